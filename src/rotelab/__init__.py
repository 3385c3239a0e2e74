"""rotelab: measure, locate and control memorization in neural networks."""

import os as _os

# rotelab shows its own progress bars; silence the libraries' per-file bars and chatter.
_os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
_os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
