"""``rotelab.mia``: the membership suite as one Python call (``rotelab mia run`` calls it once).

It validates every input (config, attack names, overlap of the sets by text and by id, each
chosen attack's resources), loads the models, and only then opens the run folder, so bad input
never leaves a folder behind. Given a testbed (its folder, its ``model/`` or an unlearning folder
built from it), the reference model and the ReCaLL prefix pool come from the testbed unless an
option names others; the manifest records which were used.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rotelab.core.api import DEFAULT_CACHE, as_model, as_samples, resolve_cache
from rotelab.core.data import Sample, check_disjoint
from rotelab.core.models import LoadOptions
from rotelab.core.signals import refuse_long_texts
from rotelab.membership.context import MIAConfig

if TYPE_CHECKING:
    from rotelab.core.cache import SignalCache
    from rotelab.core.models import LanguageModel
    from rotelab.testbed.folder import Testbed

Data = Path | str | Sequence[Sample] | Sequence[str]


def mia(
    model: "LanguageModel | Path | str",
    members: Data,
    nonmembers: Data,
    *,
    attacks: str = "all",
    out: Path | str | None = None,
    config: MIAConfig = MIAConfig(),
    reference: "LanguageModel | Path | str | None" = None,
    prefix_pool: Data | None = None,
    embedding_model: "LanguageModel | Path | str | None" = None,
    load: LoadOptions = LoadOptions(),
    cache: "SignalCache | None | object" = DEFAULT_CACHE,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Score members and non-members with every chosen attack, into a run folder.

    Parameters
    ----------
    model : a loaded :class:`~rotelab.core.models.LanguageModel`, or a model / testbed /
        unlearning folder (opened with ``load``).
    members, nonmembers : JSONL paths, :class:`~rotelab.core.data.Sample` lists or strings;
        default ids are ``members:<line>`` / ``nonmembers:<line>``. No text or id in both.
    attacks : ``all`` or a comma list (``rotelab mia attacks`` lists them).
    reference, prefix_pool, embedding_model : resources some attacks require (``reference``,
        ``recall``, a query-only target's ``neighbourhood``); default: the testbed's.
    config : attack options, batch size and seed.
    cache : the signal cache (default: the user's; None: none, batches are kept in the run).
    overwrite : recompute when ``out`` holds results of other inputs or options.

    Returns
    -------
    ``metrics.json``'s content: per attack AUC, intervals, TPR at low FPR; the bag-of-words check.

    >>> # rotelab.mia("runs/demo/testbed", "members.jsonl", "nonmembers.jsonl", attacks="loss,minkpp")
    """
    from rotelab.core.runs import open_run
    from rotelab.membership.attacks import ATTACKS, resolve_attacks
    from rotelab.membership.context import check_resources, check_same_tokenizer
    from rotelab.membership.suite import check_access, run_mia
    from rotelab.report import build_report

    config.validate()
    load.validate()
    names = resolve_attacks(attacks)
    chosen = [ATTACKS[a] for a in names]
    needed = {r for a in chosen for r in a.requires}
    mem, non = as_samples(members, role="members"), as_samples(nonmembers, role="nonmembers")
    check_disjoint(mem, non, "--members and --nonmembers")
    tb = testbed_of(model)
    companions: dict[str, str] = {}
    if "reference" in needed and reference is None and tb is not None and tb.reference is not None:
        reference = companions["reference"] = tb.reference
    if "prefix_pool" in needed and prefix_pool is None and tb is not None and tb.split("prefix_pool") is not None:
        prefix_pool = companions["prefix_pool"] = tb.split("prefix_pool")
    supplied = {k for k, v in (("reference", reference), ("prefix_pool", prefix_pool), ("embeddings", embedding_model)) if v is not None}
    check_resources(chosen, supplied)
    pool = None
    if "prefix_pool" in needed:
        pool = as_samples(prefix_pool, role="prefix_pool")  # type: ignore[arg-type]
        check_disjoint(pool, mem + non, "--prefix-pool and the evaluated sets")
    texts = [s.text for s in mem + non]

    lm = as_model(model, load)
    check_fits(lm, {"--members": (members, mem), "--nonmembers": (nonmembers, non)})
    check_access(lm, names)
    check_resources(chosen, supplied, lm.access)
    ref = emb = None
    if "reference" in needed:
        ref = as_model(reference, load)  # type: ignore[arg-type]
        check_same_tokenizer(lm, ref, texts, "--reference")
    if "embeddings" in needed and embedding_model is not None:
        emb = as_model(embedding_model, LoadOptions(device="cpu", trust_remote_code=load.trust_remote_code, allow_pickle=load.allow_pickle))
        check_same_tokenizer(lm, emb, texts, "--embedding-model")

    options = dict(
        model=describe_model(model, lm), members=describe(members, mem), nonmembers=describe(nonmembers, non), attacks=names,
        reference=describe_model(reference, ref) if ref else None, prefix_pool=describe(prefix_pool, pool) if pool else None,
        embedding_model=describe_model(embedding_model, emb) if emb else None,
        **{k: v for k, v in asdict(config).items() if k != "seed"}, long_text=lm.long_text, dtype=str(getattr(lm, "dtype", "")),
    )
    inputs = {k: v for k, v in (("members", members), ("nonmembers", nonmembers), ("prefix_pool", prefix_pool if pool else None)) if isinstance(v, (str, Path))}
    models = {k: m for k, m in (("model", lm), ("reference", ref), ("embedding_model", emb)) if m is not None}
    with open_run(out, "mia run", options, seed=config.seed, inputs=inputs, models=models, overwrite=overwrite, volatile=("batch_size", "attacks")) as run:
        note_companions(run, tb, companions)
        result = run_mia(lm, mem, non, run, names, config=config, reference=ref, prefix_texts=[s.text for s in pool] if pool else None,
                         embedding_from=emb, cache=resolve_cache(cache), progress=progress)
        build_report(run.path)
    return result


# -- shared with REMIND's entry point ---------------------------------------------------------
def testbed_of(model: "LanguageModel | Path | str") -> "Testbed | None":
    """The testbed (or unlearning folder) a model path, or a loaded model's folder, belongs to."""
    from rotelab.core.models import LanguageModel
    from rotelab.testbed.folder import Testbed

    src = getattr(model, "source", None) if isinstance(model, LanguageModel) else model
    return Testbed.find(src) if src is not None else None


def note_companions(run, tb: "Testbed | None", used: dict[str, Any]) -> None:
    """Record (manifest notes) and say (stderr) which testbed companions stood in for options."""
    if used and tb is not None:
        run.note("companions", {"testbed": str(tb.root)} | {k: str(v) for k, v in used.items()},
                 say="using the testbed's " + ", ".join(f"{k} {v}" for k, v in used.items()) + " (an option chooses another)")


def check_fits(lm: "LanguageModel", sets: dict[str, tuple[Any, Sequence[Sample]]]) -> None:
    """Under ``--long-text error``, refuse a text longer than the context before the run folder,
    naming the option, the file and the sample."""
    for option, (data, samples) in sets.items():
        refuse_long_texts(lm, samples, where=f"{option} {data}" if isinstance(data, (str, Path)) else option)


def describe(data: Any, samples: Sequence[Sample]) -> str:
    """A path as given; in-memory samples as their count and a digest of their ids and texts
    (so that a run folder's identity covers them too)."""
    if isinstance(data, (str, Path)):
        return str(data)
    h = hashlib.sha256()
    for s in samples:
        h.update(s.id.encode("utf-8", "surrogatepass") + b"\0" + s.text.encode("utf-8", "surrogatepass") + b"\0")
    return f"{len(samples)} samples in memory, sha256 {h.hexdigest()[:16]}"


def describe_model(given: Any, lm: "LanguageModel") -> str:
    return str(given) if isinstance(given, (str, Path)) else f"{lm.name} (in memory)"
