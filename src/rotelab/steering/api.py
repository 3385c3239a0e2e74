"""Python entry points of ``rotelab steer``: fit the memorization probe (:func:`probe`), generate
with steering (:func:`generate`), evaluate every steering mode (:func:`evaluate`).

Each validates all of its inputs (texts, testbed, probe folder, configuration, what fits the
context), then loads the model, and only then opens its run folder
(:func:`rotelab.core.runs.open_run`), whose identity (options, seed, input hashes, model
fingerprint) decides whether a re-run resumes, is refused, or (``overwrite=True``) recomputes.

A ``model`` that is a testbed folder (or its ``model/``, or an unlearning folder built from one:
:meth:`rotelab.testbed.folder.Testbed.find`) brings its prompt sets; any other model needs the
user's memorized (``mem``) and novel (``gen``) texts.

>>> # from rotelab.steering import api
>>> # api.probe("runs/demo/testbed", out="runs/probe")["auroc"]
>>> # api.evaluate("runs/demo/testbed", "runs/probe", out="runs/steer-eval")["goal"]
>>> # api.generate("runs/demo/testbed", "runs/probe", ["Alice was beginning"], out="runs/gen")["rows"]
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, Union

from rotelab.core.api import as_model, as_samples, data_identity
from rotelab.core.data import Sample, check_disjoint
from rotelab.core.models import LoadOptions
from rotelab.core.runs import open_run
from rotelab.errors import RotelabError
from rotelab.steering.evaluate import EvalConfig
from rotelab.steering.steer import SteerConfig
from rotelab.steering.workflows import ProbeConfig

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel
    from rotelab.testbed.folder import Testbed

Texts = Union[Path, str, Sequence[Sample], Sequence[str]]
PROBE_FILES = ("probe.npz", "probe.json", "probe_summary.json", "items.parquet")  # a probe run's files steering reads


def probe(
    model: "HFLanguageModel | Path | str",
    *,
    mem: Texts | None = None,
    gen: Texts | None = None,
    out: Path | str | None = None,
    config: ProbeConfig = ProbeConfig(),
    seed: int = 0,
    load: LoadOptions = LoadOptions(),
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Label prompts, fit a logistic probe per block, pick the block by held-out AUROC, check it causally.

    Parameters
    ----------
    model : a testbed folder (its prompt sets are used, split seeded into probe / held-out roles),
        a model folder, or a loaded :class:`HFLanguageModel` (then ``mem`` and ``gen`` are needed).
    mem, gen : memorized and novel texts: JSONL paths (``text`` per line), samples or strings.
    config : labelling (diversity, exact, source), prompt lengths, probe and dose-response settings.
    seed : draws the roles, the diversity samples and the probe's train / test split.

    Returns
    -------
    The probe's site, position, held-out AUROC with its bootstrap 95% interval, label counts and
    the causal verdict (``probe_summary.json`` holds everything).
    """
    from rotelab.core.io import read_json
    from rotelab.report import build_report
    from rotelab.steering.workflows import probe_result, prompt_set, run_probe

    config.validate()
    tb, mem_s, gen_s = _prompt_sources(model, mem, gen, load)
    lm = _open(tb.model if tb else model, load, "steer probe")
    prompts = prompt_set(lm, config, testbed=tb, mem=mem_s, gen=gen_s, seed=seed)
    inputs, options = _sources_identity(tb, mem, gen, mem_s, gen_s)
    long_text = _long_texts(lm, tb, mem, gen, mem_s, gen_s, reads=len(lm.bos_ids) + config.prefix + config.suffix)
    options = dict(model=_label(model, lm), **options, **asdict(config), long_text=lm.long_text, dtype=str(lm.dtype))
    with open_run(out, "steer probe", options, seed=seed, inputs=inputs, models={"model": lm}, overwrite=overwrite, volatile=("batch_size",)) as run:
        _note_long_text(run, long_text)
        result = run.step("probe", lambda: run_probe(lm, run, config, prompts, seed=seed, progress=progress),
                          load=lambda: probe_result(read_json(run.file("probe_summary.json"))))
        build_report(run.path)
    return result


def evaluate(
    model: "HFLanguageModel | Path | str",
    probe: Path | str,
    *,
    mem: Texts | None = None,
    gen: Texts | None = None,
    out: Path | str | None = None,
    config: EvalConfig = EvalConfig(),
    load: LoadOptions = LoadOptions(),
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Verbatim rate of held-out memorized prompts, held-out cross-entropy and paraphrase accuracy
    under no steering and under each steering mode and strength of ``config``.

    ``probe`` is a ``steer probe`` run folder. On a testbed the held-out prompts are those the
    probe run kept out of training; otherwise ``mem`` and ``gen`` are evaluated. Returns
    ``steer_eval.json``'s content (per condition: verbatim rate, CE change with a paired bootstrap
    95% interval, paraphrase accuracy; the goal check; probe score vs steering success).
    """
    from rotelab.core.io import read_json
    from rotelab.report import build_report
    from rotelab.steering.evaluate import run_eval
    from rotelab.steering.probe import Probe
    from rotelab.steering.workflows import eval_sets

    config.validate()
    pr = Probe.load(probe)
    tb, mem_s, gen_s = _prompt_sources(model, mem, gen, load)
    for f in ("probe_summary.json", "items.parquet") if tb else ("probe_summary.json",):  # prompt lengths; the testbed's held-out roles
        if not (Path(probe) / f).exists():
            raise RotelabError(f"{probe}: no {f}; give the folder of a finished 'steer probe' run")
    lm = _open(tb.model if tb else model, load, "steer eval")
    pr.check_model(lm)
    sets = eval_sets(lm, Path(probe), testbed=tb, mem=mem_s, gen=gen_s)
    inputs, options = _sources_identity(tb, mem, gen, mem_s, gen_s)
    inputs |= {f"probe {f}": Path(probe) / f for f in PROBE_FILES if (Path(probe) / f).exists()}
    options = dict(model=_label(model, lm), probe=str(probe), **options, **asdict(config), long_text=lm.long_text, dtype=str(lm.dtype))
    with open_run(out, "steer eval", options, inputs=inputs, models={"model": lm}, overwrite=overwrite, volatile=("batch_size",)) as run:
        result = run.step("eval", lambda: run_eval(lm, pr, run, config, **sets, progress=progress), load=lambda: read_json(run.file("steer_eval.json")))
        build_report(run.path)
    return result


def eval_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The headline of :func:`evaluate`'s result: per condition the verbatim rate, CE and its change,
    paraphrase accuracy (what ``steer eval`` prints)."""
    rows = [{"condition": r["condition"], "verbatim_rate": r["verbatim"]["rate"], "ce": r["ce"], "ce_change": r.get("ce_change"),
             "paraphrase_accuracy": r["paraphrase_accuracy"]["rate"]} for r in result["rows"]]
    return {k: result[k] for k in ("site", "n_mem", "n_ce_texts", "n_paraphrases", "goal")} | {"rows": rows}


def generate(
    model: "HFLanguageModel | Path | str",
    probe: Path | str,
    prompts: Texts,
    *,
    out: Path | str | None = None,
    config: SteerConfig = SteerConfig(),
    max_new_tokens: int = 32,
    batch_size: int = 32,
    load: LoadOptions = LoadOptions(),
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Greedy steered continuations of ``prompts`` (a JSONL path, samples or strings), with alpha_t
    and p_mem logged for every generated token (``generations.json``).

    A prompt that leaves no room for ``max_new_tokens`` in the context keeps its last tokens under
    ``--long-text truncate`` (counted in the manifest's notes) and is refused under ``error``.
    Returns the site, the configuration and per prompt its completion and mean alpha_t.
    """
    from rotelab.core.io import read_json
    from rotelab.report import build_report
    from rotelab.steering.probe import Probe
    from rotelab.steering.steer import Steering, generate as steer_generate

    config.validate()
    if max_new_tokens < 1:
        raise RotelabError(f"--max-new-tokens must be >= 1; got {max_new_tokens}")
    if batch_size < 1:
        raise RotelabError(f"--batch-size must be >= 1; got {batch_size}")
    pr = Probe.load(probe)
    samples = as_samples(prompts, role="prompts")
    inputs, prompts_option = data_identity("prompts", prompts, samples)
    lm = _open(model, load, "steer generate")
    pr.check_model(lm)
    ids, long_text = _fit_prompts(lm, samples, max_new_tokens, source=str(prompts) if inputs else None)
    inputs |= {f"probe {f}": Path(probe) / f for f in PROBE_FILES[:2]}
    options = dict(model=_label(model, lm), probe=str(probe), prompts=prompts_option, max_new_tokens=max_new_tokens, batch_size=batch_size, **asdict(config),
                   long_text=lm.long_text, dtype=str(lm.dtype))

    def run_generate() -> dict[str, Any]:
        g = steer_generate(lm, ids, max_new_tokens, Steering(pr, config), batch_size=batch_size, progress=progress)
        rows = [{"id": s.id, "prompt": s.text, "completion": lm.detokenize(tok), "tokens": [lm.detokenize([x]) for x in tok], "alpha": a, "p_mem": p, "mean_alpha": sum(a) / len(a)}
                for s, tok, a, p in zip(samples, g.tokens, g.alpha, g.p_mem)]
        run.write_json("generations.json", {"config": asdict(config), "site": pr.site, "rows": rows})

    with open_run(out, "steer generate", options, inputs=inputs, models={"model": lm}, overwrite=overwrite, volatile=("batch_size",)) as run:
        _note_long_text(run, long_text)
        run.step("generate", run_generate)
        build_report(run.path)
        gen = read_json(run.file("generations.json"))
    return {"site": gen["site"], "config": gen["config"], "rows": [{k: r[k] for k in ("prompt", "completion", "mean_alpha")} for r in gen["rows"]]}


# -- validation and identity helpers ----------------------------------------------------------
def _prompt_sources(model: Any, mem: Any, gen: Any, load: LoadOptions) -> "tuple[Testbed | None, list[Sample] | None, list[Sample] | None]":
    """The testbed ``model`` names, or the user's texts (read, checked and disjoint)."""
    from rotelab.testbed.folder import Testbed

    load.validate()
    tb = Testbed.find(model) if isinstance(model, (str, Path)) else None
    if tb is not None:
        if mem is not None or gen is not None:
            raise RotelabError(f"{model}: a testbed folder brings its own prompt sets; --mem and --gen are for other models")
        return tb, None, None
    if mem is None or gen is None:
        raise RotelabError(f"{model}: not a testbed folder (no splits/members.jsonl); give --mem FILE.jsonl and --gen FILE.jsonl")
    mem_s, gen_s = as_samples(mem, role="mem"), as_samples(gen, role="gen")
    check_disjoint(mem_s, gen_s, "--mem and --gen")
    return None, mem_s, gen_s


def _open(model: Any, load: LoadOptions, method: str) -> "HFLanguageModel":
    """The model, with the access steering needs (forward hooks on its blocks); ``--long-text
    window`` refused (steering reads each text's first tokens; there is nothing to window)."""
    from rotelab.core.access import Access
    from rotelab.core.models import LanguageModel

    if (model.long_text if isinstance(model, LanguageModel) else load.long_text) == "window":
        raise RotelabError("--long-text window does not apply to steering (prompts are the first tokens of each text); use truncate or error")
    lm = as_model(model, load)
    lm.require(Access.WEIGHTS, method=method)
    return lm


def _sources_identity(tb: "Testbed | None", mem: Any, gen: Any, mem_s: Any, gen_s: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Inputs hashed into the run's identity (testbed splits, or the user's files) and the options
    naming them (in-memory texts by their digest)."""
    from rotelab.steering.workflows import testbed_inputs

    if tb is not None:
        return testbed_inputs(tb), {"testbed": str(tb.root)}
    m_in, m_opt = data_identity("mem", mem, mem_s)
    g_in, g_opt = data_identity("gen", gen, gen_s)
    return m_in | g_in, {"mem": m_opt, "gen": g_opt}


def _long_texts(lm: "HFLanguageModel", tb: "Testbed | None", mem: Any, gen: Any, mem_s: Any, gen_s: Any, *, reads: int) -> dict[str, Any] | None:
    """Texts longer than the context among the user's (the testbed's passages fit its model)."""
    from rotelab.steering.labels import long_texts

    if tb is not None:
        return None
    parts = [long_texts(lm, s, source=str(f) if isinstance(f, (str, Path)) else None, reads=reads) for f, s in ((mem, mem_s), (gen, gen_s))]
    return {**parts[0], "n_texts": sum(p["n_texts"] for p in parts), "n_longer_than_context": sum(p["n_longer_than_context"] for p in parts),
            "example_ids": [i for p in parts for i in p["example_ids"]][:10]}


def _fit_prompts(lm: "HFLanguageModel", samples: "list[Sample]", max_new_tokens: int, *, source: str | None) -> tuple[list[list[int]], dict[str, Any]]:
    """Token ids of each prompt, leaving room for the new tokens: the last ``room`` tokens under
    ``truncate`` (the continuation follows the prompt's end); ``error`` refuses, naming the prompt."""
    room = lm.max_length - max_new_tokens
    if room < 1:
        raise RotelabError(f"--max-new-tokens {max_new_tokens} leaves no room for a prompt in the model's context of {lm.max_length} tokens")
    ids = lm.tokenize([s.text for s in samples])
    long = [i for i, x in enumerate(ids) if len(x) > room]
    if long and lm.long_text == "error":
        i = long[0]
        where = f"{source}: " if source else ""
        raise RotelabError(f"{where}prompt '{samples[i].id}': {len(ids[i])} tokens + {max_new_tokens} new > context {lm.max_length}; "
                           f"choose --long-text truncate (keeps its last {room} tokens)")
    note = {"policy": lm.long_text, "max_length": lm.max_length, "n_texts": len(ids), "n_longer_than_context": len(long),
            "tokens_dropped": sum(len(ids[i]) - room for i in long), "example_ids": [samples[i].id for i in long[:10]]}
    return [x[-room:] for x in ids], note


def _note_long_text(run: Any, note: dict[str, Any] | None) -> None:
    if note is None:
        return
    n = note["n_longer_than_context"]
    what = "kept their last tokens" if "tokens_dropped" in note else f"are read up to their first {note.get('tokens_read')} tokens"
    run.note("long_text", note, say=f"{n} of {note['n_texts']} texts are longer than the context and {what}" if n else None)


def _label(model: Any, lm: "HFLanguageModel") -> str:
    return str(model) if isinstance(model, (str, Path)) else lm.name
