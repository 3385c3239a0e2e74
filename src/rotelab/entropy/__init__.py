"""Matrix-based entropy (MBE) of representations and the GAPT trainer (Yu 2025, arXiv 2505.08727).

``rotelab.entropy.mbe`` holds the entropy itself (:func:`~rotelab.entropy.mbe.mbe_alpha2`,
:func:`~rotelab.entropy.mbe.matrix_renyi`, :func:`~rotelab.entropy.mbe.patch_mbe`).
"""
