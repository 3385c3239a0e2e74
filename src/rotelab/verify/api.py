"""``rotelab.verify``: is unlearned data really gone, or only hidden? One Python call
(``rotelab verify`` calls it once).

It validates every input (options; forget / retain / holdout pairwise disjoint; the relearning
data disjoint from forget and holdout; perturbed answers' fields), loads the models (the same
tokenizer for all), and only then opens the run folder. Given an unlearning folder (or one of
its checkpoints) made by ``rotelab testbed unlearn``, the splits, the relearning data, the
perturbed answers and the original model come from its testbed unless an option names others.

Every measure is a sub-run in ``RUN/attacks/<name>/`` made by the capability's own API
(:func:`rotelab.mia`, :func:`rotelab.remind`, :func:`rotelab.extraction.api.extract_samples`),
each with its own identity, so an interrupted verification resumes attack by attack. Relearned
models are saved in ``RUN/models/`` (safetensors). ``verify.json`` holds the verdict and every
figure; the report opens with the verdict table.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from rotelab.core.api import DEFAULT_CACHE, as_model, as_samples, resolve_cache
from rotelab.core.data import Sample, check_disjoint
from rotelab.core.models import LoadOptions
from rotelab.errors import RotelabError
from rotelab.membership.api import describe, describe_model
from rotelab.membership.remind.suite import RemindConfig
from rotelab.verify.attacks import RelearnConfig

if TYPE_CHECKING:
    from rotelab.core.models import LanguageModel
    from rotelab.core.runs import RunFolder

Data = Path | str | Sequence[Sample] | Sequence[str]
DIRECT_ATTACKS = "loss,zlib,mink,minkpp"  # the loss family: one forward pass each, no extra resource


@dataclass(frozen=True)
class VerifyConfig:
    """What a verification runs and how its verdict is decided (defaults sized for the testbeds)."""

    delta: float = 0.05  # an attack detects when its AUC exceeds 0.5 + delta with confidence
    alpha: float = 0.05  # family-wise, Holm-corrected across the attacks run
    attacks: str = DIRECT_ATTACKS  # membership attacks on the unlearned model (direct evidence)
    attacked_score: str = "loss"  # the one membership score re-measured on attacked models
    quantize_bits: tuple[int, ...] = (8, 4)
    relearn: RelearnConfig = field(default_factory=RelearnConfig)
    remind: bool = True
    remind_config: RemindConfig = field(default_factory=RemindConfig)
    extract_prefix: int = 12  # extraction: greedy suffix after this many tokens of each sample
    extract_suffix: int = 8
    max_retain: int = 200  # retain samples scored (a seeded subset; relearning on retain uses them all)
    n_boot: int = 2000
    batch_size: int = 32
    seed: int = 0

    def check(self) -> None:
        """One line naming the option for a value out of its range."""
        from rotelab.membership.attacks import resolve_attacks

        if not 0 <= self.delta < 0.5:
            raise RotelabError(f"--delta must be in [0, 0.5); got {self.delta}")
        if not 0 < self.alpha < 1:
            raise RotelabError(f"--alpha must be in (0, 1); got {self.alpha}")
        resolve_attacks(self.attacks)
        resolve_attacks(self.attacked_score)
        if "," in self.attacked_score:
            raise RotelabError(f"--attacked-score takes one attack; got '{self.attacked_score}'")
        if any(not 2 <= b <= 16 for b in self.quantize_bits):
            raise RotelabError(f"--quantize bits must be in [2, 16]; got {list(self.quantize_bits)}")
        r = self.relearn
        if r.steps < 0 or r.batch_size < 1 or not r.lr > 0:
            raise RotelabError(f"need --relearn-steps >= 0, --relearn-batch-size >= 1, --relearn-lr > 0; got {r.steps}, {r.batch_size}, {r.lr}")
        for name in ("extract_prefix", "extract_suffix", "max_retain", "n_boot", "batch_size"):
            if getattr(self, name) < 1:
                raise RotelabError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        # The smallest bootstrap p-value is 1/(n_boot+1); Holm multiplies it by the family size m.
        # Below 2m/alpha - 1 resamples no attack could ever detect: every model would read "removed".
        m = len(resolve_attacks(self.attacks)) + 1 + int(self.remind) + len(self.quantize_bits) + 2  # + extraction, REMIND, quantized, 2 relearned
        if self.n_boot + 1 < 2 * m / self.alpha:
            raise RotelabError(f"--n-boot {self.n_boot} is too few for {m} Holm-corrected attacks at alpha {self.alpha}: no attack could detect anything; use at least {int(np.ceil(2 * m / self.alpha)) - 1}")
        if self.remind:
            self.remind_config.validate()


def verify(
    model: "LanguageModel | Path | str",
    *,
    forget: Data | None = None,
    retain: Data | None = None,
    holdout: Data | None = None,
    original: "LanguageModel | Path | str | None" = None,
    retrained: "LanguageModel | Path | str | None" = None,
    relearn: Data | None = None,
    perturbed: Data | None = None,
    out: Path | str | None = None,
    config: VerifyConfig = VerifyConfig(),
    load: LoadOptions = LoadOptions(),
    cache: object = DEFAULT_CACHE,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Every attack that can bring forgotten data back, on the same samples, and one verdict.

    Parameters
    ----------
    model : the unlearned model: a loaded :class:`~rotelab.core.models.LanguageModel`, a model
        folder, or an unlearning folder / checkpoint (then the testbed supplies what is not given).
    forget, retain, holdout : JSONL paths, samples or strings; pairwise disjoint.
    original : the model before unlearning (extraction "before", the recovered share of the gap).
    retrained : a model trained without the forget set (Forget Quality, ``oracle_distance``).
    relearn : data of the forget set's distribution, disjoint from it (the relearning attack's (b)).
    perturbed : rows with ``text``, ``answer``, ``perturbed`` for the forget ids (truth ratios).
    config : the attacks and the verdict rule (:class:`VerifyConfig`).

    Returns
    -------
    ``verify.json``'s content: ``verdict`` (``not removed | hidden | removed``), ``detected_by``,
    the evidence table (every attack's AUC, interval, raw and Holm p-value), and each attack's figures.

    >>> # rotelab.verify("runs/demo/unlearn-npo", retrained="runs/demo/retrain/model", out="runs/verify")
    """
    from rotelab.core.runs import open_run
    from rotelab.report import build_report

    config.check()
    load.validate()
    given, companions = _from_testbed(model, dict(forget=forget, retain=retain, holdout=holdout, relearn=relearn, perturbed=perturbed, original=original))
    for role in ("forget", "retain", "holdout"):
        if given[role] is None:
            raise RotelabError(f"--{role} is required (or give an unlearning folder made by 'rotelab testbed unlearn' as --model)")
    sets = {role: as_samples(given[role], role=role) for role in ("forget", "retain", "holdout")}
    for a, b in combinations(sets, 2):
        check_disjoint(sets[a], sets[b], f"--{a} and --{b}")
    need = config.remind_config.folds if config.remind else 2
    for role, rows in sets.items():
        if len(rows) < need:
            raise RotelabError(f"--{role}: {len(rows)} texts < {need} needed (REMIND's folds)")
    relearn_rows = as_samples(given["relearn"], role="relearn") if given["relearn"] is not None else None
    if relearn_rows is not None:
        for role in ("forget", "holdout"):
            check_disjoint(relearn_rows, sets[role], f"--relearn and --{role}")
    truth_rows = None
    if given["perturbed"] is not None and retrained is not None:
        from rotelab.verify.truth import check_rows

        ids = {s.id for s in sets["forget"]}
        truth_rows = [s for s in as_samples(given["perturbed"], role="perturbed") if s.id in ids]
        if not truth_rows:
            raise RotelabError(f"--perturbed: no row has the id of a --forget sample (ids such as '{sets['forget'][0].id}')")
        check_rows(truth_rows, f"--perturbed {given['perturbed']}")
    scored_retain = _subset(sets["retain"], config.max_retain, config.seed)

    lm = as_model(model, load)
    _check_fits(lm, config, sets)
    others = {k: as_model(v, load) for k, v in (("original", given["original"]), ("retrained", retrained)) if v is not None}
    texts = [s.text for rows in sets.values() for s in rows[:50]]
    from rotelab.membership.context import check_same_tokenizer

    for k, other in others.items():
        check_same_tokenizer(lm, other, texts, f"--{k}")

    options = dict(
        model=describe_model(model, lm), **{r: describe(given[r], sets[r]) for r in sets},
        relearn=describe(given["relearn"], relearn_rows) if relearn_rows else None,
        perturbed=str(given["perturbed"]) if truth_rows and isinstance(given["perturbed"], (str, Path)) else (describe(None, truth_rows) if truth_rows else None),
        **{k: describe_model(given[k] if k == "original" else retrained, m) for k, m in others.items()},
        config=asdict(config), long_text=lm.long_text, dtype=str(getattr(lm, "dtype", "")),
    )
    inputs = {k: given[k] for k in ("forget", "retain", "holdout", "relearn", "perturbed") if isinstance(given[k], (str, Path))}
    with open_run(out, "verify", options, seed=config.seed, inputs=inputs, models={"model": lm, **others}, overwrite=overwrite, volatile=("batch_size",)) as run:
        if companions:
            run.note("companions", {k: str(v) for k, v in companions.items()}, say="using the testbed's " + ", ".join(companions) + " (an option chooses another)")
        from rotelab.verify.run import run_verify

        result = run_verify(lm, sets, scored_retain, run, config=config, original=others.get("original"), retrained=others.get("retrained"),
                            relearn=relearn_rows, truth_rows=truth_rows, cache=resolve_cache(cache), overwrite=overwrite, progress=progress)
        build_report(run.path)
    return result


def _subset(rows: list[Sample], n: int, seed: int) -> list[Sample]:
    """At most ``n`` rows, a seeded random subset in file order."""
    if len(rows) <= n:
        return rows
    keep = set(random.Random(seed).sample(range(len(rows)), n))
    return [s for i, s in enumerate(rows) if i in keep]


def _check_fits(lm: "LanguageModel", config: VerifyConfig, sets: dict[str, list[Sample]]) -> None:
    from rotelab.membership.api import check_fits

    check_fits(lm, {f"--{r}": (None, rows) for r, rows in sets.items()})
    bos = len(lm.bos_ids)
    if bos + config.extract_prefix + config.extract_suffix > lm.max_length:
        raise RotelabError(f"--extract-prefix {config.extract_prefix} + --extract-suffix {config.extract_suffix} exceed the model's context of {lm.max_length} tokens")


def _from_testbed(model: Any, given: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Fill what is not given from the testbed the model belongs to: its splits, and for an
    unlearning folder the testbed's own model as the original."""
    from rotelab.core.io import read_json
    from rotelab.membership.api import testbed_of

    tb = testbed_of(model)
    if tb is None:
        return given, {}
    out, used = dict(given), {}
    for role, split in (("forget", "forget"), ("retain", "retain"), ("holdout", "holdout"), ("relearn", "relearn"), ("perturbed", "perturbed_answers")):
        if out[role] is None and tb.split(split) is not None:
            out[role] = used[role] = tb.split(split)
    if out["original"] is None:
        try:
            base = read_json(tb.root / "manifest.json").get("testbed")
        except (OSError, ValueError):
            base = None
        if isinstance(base, str) and (Path(base) / "model" / "config.json").is_file():
            out["original"] = used["original"] = Path(base) / "model"
    return out, used
