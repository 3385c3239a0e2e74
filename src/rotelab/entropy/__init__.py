"""Matrix-based entropy (MBE) of representations and the GAPT trainer (Yu 2025, arXiv 2505.08727)."""

from rotelab.entropy.mbe import matrix_renyi, mbe_alpha2, patch_mbe

__all__ = ["matrix_renyi", "mbe_alpha2", "patch_mbe"]
