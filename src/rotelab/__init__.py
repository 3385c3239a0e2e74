"""rotelab: measure, locate and control memorization in neural networks.

The Python API mirrors the command line: each command is one function here, taking paths or
in-memory objects (a loaded model, a list of texts) and returning the result the command prints.

>>> import rotelab
>>> rotelab.signals.__module__, "mia" in rotelab.__all__
('rotelab.inspection.api', True)

Names are imported on first use, so ``import rotelab`` stays light (no torch until a model is needed).
"""

import os as _os
from importlib import import_module as _import

# rotelab shows its own progress bars; silence the libraries' per-file bars and chatter.
_os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
_os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"

# public name -> "module:attribute". The main entry points are here; every capability's full API
# is ``rotelab.<capability>.api`` (e.g. ``rotelab.diffusion.api``, ``rotelab.recsys.api``).
_API = {
    # models and the core engines
    "load_model": "rotelab.core.models:load_model",
    "LoadOptions": "rotelab.core.models:LoadOptions",
    "Sample": "rotelab.core.data:Sample",
    "read_jsonl": "rotelab.core.data:read_jsonl",
    "compute_signals": "rotelab.core.signals:compute_signals",
    "Sampling": "rotelab.core.generate:Sampling",
    "decode": "rotelab.core.generate:decode",
    "summarize": "rotelab.core.stats:summarize",
    "RunFolder": "rotelab.core.runs:RunFolder",
    "build_report": "rotelab.report:build_report",
    "Testbed": "rotelab.testbed.folder:Testbed",
    # one function per command
    "signals": "rotelab.inspection.api:signals",
    "build_testbed": "rotelab.testbed.api:build",
    "unlearn": "rotelab.testbed.api:unlearn",
    "mia": "rotelab.membership.api:mia",
    "MIAConfig": "rotelab.membership.context:MIAConfig",
    "ATTACKS": "rotelab.membership.attacks:ATTACKS",
    "remind": "rotelab.membership.remind.api:remind",
    "extract_book": "rotelab.extraction.api:extract_book",
    "extract_samples": "rotelab.extraction.api:extract_samples",
    "weightdiff": "rotelab.extraction.api:weightdiff",
    "books_experiment": "rotelab.extraction.api:books_experiment",
    "steer_probe": "rotelab.steering.api:probe",
    "steer_generate": "rotelab.steering.api:generate",
    "steer_eval": "rotelab.steering.api:evaluate",
    "mbe": "rotelab.entropy.api:mbe",
    "train_gapt": "rotelab.entropy.api:train",
    "verify_unlearning": "rotelab.verify.api:verify",
    "ehr_synth": "rotelab.clinical.api:synth",
    "ehr_train": "rotelab.clinical.api:train",
    "ehr_audit": "rotelab.clinical.api:audit",
    "biomed_task": "rotelab.biomed.api:build_task",
    "biomed_pretrain": "rotelab.biomed.api:pretrain",
    "biomed_finetune": "rotelab.biomed.api:finetune",
    "biomed_evaluate": "rotelab.biomed.api:evaluate",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    try:
        module, attr = _API[name].split(":")
    except KeyError:
        raise AttributeError(f"module 'rotelab' has no attribute '{name}'") from None
    value = getattr(_import(module), attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
