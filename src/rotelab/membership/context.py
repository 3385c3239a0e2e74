"""What an attack sees: the target, the texts, their cached signals, the config, the resources it
declared, and generic services for its own extra passes (cached signal passes, checkpointed
log-prob passes, a memo). No attack-specific pass lives here: each attack module owns its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from rotelab.core.access import Access
from rotelab.core.signals import TokenSignals, compute_signals
from rotelab.errors import RotelabError
from rotelab.membership.passes import PASSES, checkpointed_map, logp_many

if TYPE_CHECKING:
    from rotelab.core.cache import SignalCache
    from rotelab.core.models import LanguageModel
    from rotelab.core.runs import RunFolder
    from rotelab.membership.attacks import Attack
    from rotelab.membership.mlm import MaskedLM


@dataclass(frozen=True)
class MIAConfig:
    """Every attack's options (written verbatim to the manifest; each enters the run's identity)."""

    k: float = 0.2  # Min-K% / Min-K%++ share of lowest tokens
    n_neighbours: int = 16  # Neighbourhood: K neighbours (AUC flat from K = 16 to 50: bench/membership_attacks.py)
    swap_rate: float = 0.1  # Neighbourhood, embedding generator: swap probability p
    rank: int = 1  # Neighbourhood, embedding generator: j-th nearest neighbour
    recall_shots: int = 4  # ReCaLL / Con-ReCaLL: pool passages offered as whole shots
    conrecall_gamma: float = 0.5  # Con-ReCaLL: weight of the member-prefix log-likelihood
    gradnorm_p: str = "inf"  # GradNorm: the per-tensor norm, 1 | 2 | inf (MIMIR's default)
    dcpdd_a: float = 0.01  # DC-PDD: the cap on each token's calibrated score (the paper's a)
    samia_samples: int = 10  # SaMIA: sampled continuations per text
    samia_prefix_ratio: float = 0.5  # SaMIA: share of words given as the prompt
    samia_temperature: float = 1.0
    samia_top_k: int = 50
    batch_size: int = 32
    seed: int = 0

    def validate(self) -> None:
        from rotelab.membership.attacks.gradnorm import NORMS

        if not 0 < self.k <= 1:
            raise RotelabError(f"--k must be in (0, 1]; got {self.k}")
        if not 0 < self.swap_rate <= 1:
            raise RotelabError(f"--swap-rate must be in (0, 1]; got {self.swap_rate}")
        if self.rank < 1 or self.n_neighbours < 1 or self.recall_shots < 1:
            raise RotelabError("--rank, --neighbours and --recall-shots must be >= 1")
        if self.gradnorm_p not in NORMS:
            raise RotelabError(f"--gradnorm-p must be one of {', '.join(NORMS)}; got '{self.gradnorm_p}'")
        if not self.conrecall_gamma >= 0:
            raise RotelabError(f"--conrecall-gamma must be >= 0; got {self.conrecall_gamma}")
        if not self.dcpdd_a > 0:
            raise RotelabError(f"--dcpdd-a must be > 0; got {self.dcpdd_a}")
        if self.samia_samples < 1 or self.samia_top_k < 1:
            raise RotelabError("--samia-samples and samia_top_k must be >= 1")
        if not 0 < self.samia_prefix_ratio < 1:
            raise RotelabError(f"samia_prefix_ratio must be in (0, 1); got {self.samia_prefix_ratio}")
        if not self.samia_temperature > 0:
            raise RotelabError(f"samia_temperature must be > 0; got {self.samia_temperature}")
        if self.batch_size < 1:
            raise RotelabError(f"--batch-size must be >= 1; got {self.batch_size}")


# -- resources: what an attack may need besides the target -----------------------------------
@dataclass(frozen=True)
class Resource:
    """Something an attack needs besides the target, and how a user supplies it."""

    option: str  # the command-line option (the API keyword is its name in snake case)
    what: str  # what to pass, for the one-line refusal
    field: str  # the AttackContext field that holds it
    from_target: Access | None = None  # the target provides it itself when it offers this access


RESOURCES: dict[str, Resource] = {
    "reference": Resource("--reference", "a model folder with the same tokenizer", "reference"),
    "prefix_pool": Resource("--prefix-pool", "JSONL of known non-members, disjoint from both sets", "prefix_texts"),
    "member_prefix_pool": Resource("--member-prefix-pool", "JSONL of known members, disjoint from both scored sets", "member_prefix_texts"),
    "frequency_corpus": Resource("--frequency-corpus", "JSONL of reference text for token frequencies, disjoint from both scored sets", "frequency_texts"),
    "embeddings": Resource(
        "--embedding-model", "token embeddings from a model folder with the same tokenizer, as the target's backend offers no weights; or --neighbour-model",
        "embedding_from", from_target=Access.WEIGHTS,
    ),
}


def check_resources(attacks: Iterable["Attack"], supplied: set[str], access: frozenset[Access] | None = None) -> None:
    """Refuse, in one line naming the option, an attack whose resource is neither supplied nor
    provided by the target (``access`` None: the target is not loaded yet, so only what it
    cannot provide is checked)."""
    for a in attacks:
        for r in a.requires:
            res = RESOURCES[r]
            if r in supplied or (res.from_target is not None and (access is None or res.from_target in access)):
                continue
            raise RotelabError(f"attack '{a.name}' needs {res.option} ({res.what}); or leave it out of --attacks")


def check_same_tokenizer(lm: "LanguageModel", other: "LanguageModel", texts: Sequence[str], option: str) -> None:
    """A second model (reference, embeddings) must split the texts exactly as the target does."""
    if other.tokenize(list(texts)) != lm.tokenize(list(texts)):
        raise RotelabError(f"{option}: its tokenizer splits the texts differently from the target model's; it must share the target's tokenizer")


# -- the context ------------------------------------------------------------------------------
@dataclass
class AttackContext:
    """The target, the texts and their signals, and services for attacks' extra passes.

    ``reference``, ``prefix_texts``, ``member_prefix_texts``, ``frequency_texts`` and
    ``embedding_from`` hold the declared resources (see :data:`RESOURCES`); attacks read them with
    :meth:`resource`. ``neighbour_model`` is the optional masked LM of the Neighbourhood attack.
    With ``run``, extra passes save each batch under ``<run>/passes/`` so an interrupted run
    resumes mid-pass. What an attack :meth:`record` s (prefix shots used, the generator, ...)
    goes to ``details[attack]``, then to ``metrics.json`` and the manifest's notes.
    """

    lm: "LanguageModel"
    texts: list[str]
    signals: list[TokenSignals]
    config: MIAConfig = field(default_factory=MIAConfig)
    reference: "LanguageModel | None" = None
    prefix_texts: list[str] | None = None
    member_prefix_texts: list[str] | None = None
    frequency_texts: list[str] | None = None
    embedding_from: "LanguageModel | Path | None" = None
    neighbour_model: "MaskedLM | None" = None
    cache: "SignalCache | None" = None
    progress: bool = False
    run: "RunFolder | None" = None
    attack: str | None = None  # the attack running now (set by Attack.run)
    details: dict[str, dict] = field(default_factory=dict)
    _memo: dict = field(default_factory=dict, repr=False)

    def record(self, details: dict[str, Any]) -> None:
        """What the running attack wants reported beside its AUC (JSON-able)."""
        self.details[self.attack or "?"] = details

    def resource(self, name: str) -> Any:
        """The resource ``name`` (None when the target provides it itself); refused in one line
        naming its option when absent."""
        res = RESOURCES[name]
        value = getattr(self, res.field)
        if value is None and not (res.from_target is not None and res.from_target in self.lm.access):
            raise RotelabError(f"needs {res.option} ({res.what})")
        return value

    def memo(self, key: Any, fn: Callable[[], Any]) -> Any:
        """``fn()`` computed once per context (e.g. a neighbour table two attacks share)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def signals_of(self, texts: Sequence[str], label: str, *, lm: "LanguageModel | None" = None) -> list[TokenSignals]:
        """Signals of other texts (or of a second model), cached per batch like the main pass;
        texts longer than the context are noted in the run's manifest under ``long_text_<label>``."""
        counts: list = []
        out = compute_signals(lm or self.lm, list(texts), batch_size=self.config.batch_size, cache=self.cache, progress=self.progress, counts_out=counts)
        if self.run is not None and counts[0].n_long:
            self.run.note(f"long_text_{label}", counts[0].as_dict(), say=f"{label}: {counts[0].message()}")
        return out

    def checkpointed(self, label: str, items: Sequence[Any], fn: Callable[[list[Any]], Sequence[np.ndarray]] | None, *, length: Callable[[Any], int] = len, many=None) -> list[np.ndarray]:
        """``fn`` (or ``many``) over length-sorted batches of ``items`` (one 1-D array per item, input
        order), each batch saved under ``<run>/passes/<label>`` (see :func:`~rotelab.membership.passes.checkpointed_map`)."""
        return checkpointed_map(fn, items, folder=pass_folder(self.run, label), batch_size=self.config.batch_size, length=length, progress=self.progress, label=label, many=many)

    def logp_pass(self, label: str, seqs: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """(T-1,) log-probs of each token-id list under the target, checkpointed per batch; lists
        longer than the context follow the model's long-text policy, as the signals do."""
        return self.checkpointed(label, seqs, None, many=lambda batches: logp_many(self.lm, batches, label=label))


def pass_folder(run: "RunFolder | None", label: str) -> Path | None:
    """Where a pass named ``label`` saves its batches in ``run`` (None without a run)."""
    from rotelab.core.io import safe_filename

    return run.file(PASSES) / safe_filename(label) if run is not None else None
