"""Clinical: memorization tests T1-T6 for EHR foundation models on MEDS data (Tonekaboni et al.,
NeurIPS 2025), a synthetic MEDS cohort with planted ground truth, and a small EHR model to audit.

Python API: :func:`rotelab.clinical.api.synth`, :func:`~rotelab.clinical.api.train`,
:func:`~rotelab.clinical.api.audit`; commands ``rotelab clinical synth|train|audit``.
"""
