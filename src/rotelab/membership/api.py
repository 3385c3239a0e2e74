"""``rotelab.mia``: the membership suite as one Python call (``rotelab mia run`` calls it once).

It validates every input (config, attack names, overlap of the sets by text and by id, each
chosen attack's resources and their overlap with the scored sets, each attack's own check),
loads the models, and only then opens the run folder, so bad input never leaves a folder behind.
Given a testbed (its folder, its ``model/`` or an unlearning folder built from it), the reference
model, the prefix pools and the DC-PDD frequency corpus come from the testbed unless an option
names others; the manifest records which were used. ``attacks="all"`` runs every attack the
backend and the resources allow and notes the others with what they need; a named attack that
cannot run is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rotelab.core.api import DEFAULT_CACHE, as_model, as_samples, resolve_cache
from rotelab.core.data import Sample, check_disjoint, read_jsonl
from rotelab.core.models import LoadOptions
from rotelab.core.signals import refuse_long_texts
from rotelab.membership.context import MIAConfig

if TYPE_CHECKING:
    from rotelab.core.access import Access
    from rotelab.core.cache import SignalCache
    from rotelab.core.models import LanguageModel
    from rotelab.testbed.folder import Testbed

Data = Path | str | Sequence[Sample] | Sequence[str]
POOLS = {"prefix_pool": "prefix_texts", "member_prefix_pool": "member_prefix_texts", "frequency_corpus": "frequency_texts"}  # text resources -> context field


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
    member_prefix_pool: Data | None = None,
    frequency_corpus: Data | None = None,
    embedding_model: "LanguageModel | Path | str | None" = None,
    neighbour_model: Path | str | None = None,
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
    attacks : ``all`` (every attack the backend and resources allow) or a comma list
        (``rotelab mia attacks`` lists them).
    reference : the ``reference`` attack's model (same tokenizer).
    prefix_pool, member_prefix_pool : known non-members (ReCaLL, Con-ReCaLL) and known members
        (Con-ReCaLL); neither may share a text or id with the scored sets.
    frequency_corpus : DC-PDD's reference text for token frequencies (disjoint from the scored sets).
    embedding_model : token embeddings for a query-only target's neighbourhood.
    neighbour_model : a local masked-LM folder: the Neighbourhood attack's generator (the paper's)
        instead of embedding-neighbour swaps.
        Every resource defaults to the testbed's when the model is a testbed.
    config : attack options, batch size and seed.
    cache : the signal cache (default: the user's; None: none, batches are kept in the run).
    overwrite : recompute when ``out`` holds results of other inputs or options.

    Returns
    -------
    ``metrics.json``'s content: per attack AUC, intervals, TPR at low FPR (and what the attack
    recorded under ``details``); the bag-of-words check.

    >>> # rotelab.mia("runs/demo/testbed", "members.jsonl", "nonmembers.jsonl", attacks="loss,minkpp")
    """
    from rotelab.core.runs import open_run
    from rotelab.membership.attacks import ATTACKS, resolve_attacks
    from rotelab.membership.context import AttackContext, check_resources, check_same_tokenizer
    from rotelab.membership.suite import check_access, run_mia
    from rotelab.report import build_report

    config.validate()
    load.validate()
    everything = attacks.strip() == "all"
    names = resolve_attacks(attacks)
    mem, non = as_samples(members, role="members"), as_samples(nonmembers, role="nonmembers")
    check_disjoint(mem, non, "--members and --nonmembers")
    scored = mem + non
    tb = testbed_of(model)
    given: dict[str, Any] = {"reference": reference, "prefix_pool": prefix_pool, "member_prefix_pool": member_prefix_pool,
                             "frequency_corpus": frequency_corpus, "embeddings": embedding_model}
    needed = {r for a in names for r in ATTACKS[a].requires}
    companions = fill_from_testbed(tb, given, needed, scored)
    supplied = {k for k, v in given.items() if v is not None} | ({"embeddings"} if neighbour_model is not None else set())
    skipped: dict[str, str] = {}
    if everything:
        names, skipped = runnable(names, supplied)
    check_resources([ATTACKS[a] for a in names], supplied)
    needed = {r for a in names for r in ATTACKS[a].requires}
    pools = {r: pool_samples(given[r], r, scored) for r in POOLS if r in needed}
    texts = [s.text for s in scored]

    lm = as_model(model, load)
    check_fits(lm, {"--members": (members, mem), "--nonmembers": (nonmembers, non)})
    if everything:
        names, more = runnable(names, supplied, lm.access)
        skipped |= more
    check_access(lm, names)
    check_resources([ATTACKS[a] for a in names], supplied, lm.access)
    ref = emb = mlm = None
    if "reference" in needed:
        ref = as_model(given["reference"], load)
        check_same_tokenizer(lm, ref, texts, "--reference")
    if "neighbourhood" in names and neighbour_model is not None:
        from rotelab.membership.mlm import MaskedLM

        mlm = MaskedLM.load(neighbour_model, trust_remote_code=load.trust_remote_code, allow_pickle=load.allow_pickle)
    elif "embeddings" in needed and embedding_model is not None:
        emb = as_model(embedding_model, LoadOptions(device="cpu", trust_remote_code=load.trust_remote_code, allow_pickle=load.allow_pickle))
        check_same_tokenizer(lm, emb, texts, "--embedding-model")
    resources = {"reference": ref, "embedding_from": emb, "neighbour_model": mlm, **{POOLS[r]: [s.text for s in p] for r, p in pools.items()}}
    dry = AttackContext(lm, texts, [], config, **resources)  # no signals yet: each attack's own check
    for a in names:
        if ATTACKS[a].check is not None:
            ATTACKS[a].check(dry)

    options = dict(
        model=describe_model(model, lm), members=describe(members, mem), nonmembers=describe(nonmembers, non), attacks=names,
        reference=describe_model(given["reference"], ref) if ref else None,
        **{r: describe(given[r], p) for r, p in pools.items()},
        embedding_model=describe_model(embedding_model, emb) if emb else None,
        neighbour_generator=None if "neighbourhood" not in names else ("mlm" if mlm else "embedding-swap"),
        neighbour_model=mlm.source if mlm else None,
        **{k: v for k, v in asdict(config).items() if k != "seed"}, long_text=lm.long_text, dtype=str(getattr(lm, "dtype", "")),
    )
    inputs = {"members": members, "nonmembers": nonmembers, **{r: given[r] for r in pools}}
    inputs = {k: v for k, v in inputs.items() if isinstance(v, (str, Path))}
    models = {k: m for k, m in (("model", lm), ("reference", ref), ("embedding_model", emb), ("neighbour_model", mlm.fingerprint if mlm else None)) if m is not None}
    with open_run(out, "mia run", options, seed=config.seed, inputs=inputs, models=models, overwrite=overwrite, volatile=("batch_size", "attacks")) as run:
        note_companions(run, tb, companions)
        if skipped:
            run.note("attacks_skipped", skipped, say="--attacks all: skipped " + "; ".join(f"{a} ({why})" for a, why in skipped.items()))
        result = run_mia(lm, mem, non, run, names, config=config, cache=resolve_cache(cache), progress=progress, **resources)
        build_report(run.path)
    return result


def runnable(names: list[str], supplied: set[str], access: "frozenset[Access] | None" = None) -> tuple[list[str], dict[str, str]]:
    """The attacks of ``all`` this backend and these resources allow, and why each other one cannot
    run (``access`` None: the target is not loaded yet, only missing resources are known)."""
    from rotelab.membership.attacks import ATTACKS
    from rotelab.membership.context import RESOURCES

    keep, skipped = [], {}
    for a in names:
        attack = ATTACKS[a]
        if access is not None and attack.needs not in access:
            skipped[a] = f"needs {attack.needs.name.lower()} access"
            continue
        missing = [RESOURCES[r] for r in attack.requires if r not in supplied
                   and not (RESOURCES[r].from_target is not None and (access is None or RESOURCES[r].from_target in access))]
        if missing:
            skipped[a] = f"needs {missing[0].option}"
            continue
        keep.append(a)
    return keep, skipped


def fill_from_testbed(tb: "Testbed | None", given: dict[str, Any], needed: set[str], scored: Sequence[Sample]) -> dict[str, str]:
    """Fill the resources no option named from the testbed's companions; returns what was used.

    DC-PDD's frequency corpus is the testbed's non-member text (``nonmembers`` and
    ``prefix_pool``) minus every scored text and id.
    """
    used: dict[str, str] = {}
    if tb is None:
        return used
    if "reference" in needed and given["reference"] is None and tb.reference is not None:
        given["reference"] = used["reference"] = tb.reference
    for r in ("prefix_pool", "member_prefix_pool"):
        if r in needed and given[r] is None and tb.split(r) is not None:
            given[r] = used[r] = tb.split(r)
    if "frequency_corpus" in needed and given["frequency_corpus"] is None:
        files = [f for f in (tb.split("nonmembers"), tb.split("prefix_pool")) if f is not None]
        texts, ids = {s.text for s in scored}, {s.id for s in scored}
        corpus = [s for f in files for s in read_jsonl(f) if s.text not in texts and s.id not in ids]
        if corpus:
            given["frequency_corpus"] = corpus
            used["frequency_corpus"] = f"{' + '.join(str(f) for f in files)} minus the scored texts: {len(corpus)} texts"
    return used


def pool_samples(data: Data, resource: str, scored: Sequence[Sample]) -> list[Sample]:
    """A text resource's samples, refused if it shares a text or an id with the scored sets."""
    from rotelab.membership.context import RESOURCES

    samples = as_samples(data, role=resource)
    check_disjoint(samples, scored, f"{RESOURCES[resource].option} and the evaluated sets")
    return samples


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
