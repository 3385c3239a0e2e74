"""The extraction capability's Python API: one entry point per command.

Each validates every input first (options, files, what fits the model's context), then loads the
model, and only then opens its run folder (resuming only work computed from the same inputs and
options), computes, builds the report, and returns what the command prints::

    >>> import rotelab.extraction.api as extraction
    >>> # extraction.extract_samples("runs/tb", "runs/tb/splits/members.jsonl", out="runs/ext")   # k-extractable, EM, ES
    >>> # extraction.extract_book("runs/tb", "alice.txt", config=BookConfig(mode="autoregressive"), out="runs/book")
    >>> # extraction.weightdiff("base/", tuned="tuned/", out="runs/wd")          # or adapter="lora/"
    >>> # extraction.books_experiment(out="runs/books")                          # builds the books testbed first
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.data import Sample
    from rotelab.core.models import LanguageModel, LoadOptions
    from rotelab.extraction.book import Book, BookConfig
    from rotelab.extraction.samples import SamplesConfig


def _load(load: "LoadOptions | None") -> "LoadOptions":
    from rotelab.core.models import LoadOptions

    return load or LoadOptions()


def _model_option(model: "LanguageModel | Path | str", lm: "LanguageModel") -> str:
    return str(model) if isinstance(model, (str, Path)) else lm.name


def _content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False, sort_keys=True).encode("utf-8", "surrogatepass")).hexdigest()


def extract_book(
    model: "LanguageModel | Path | str",
    book: "Book | Path | str",
    *,
    out: Path | str | None = None,
    config: "BookConfig | None" = None,
    seed: int = 0,
    load: "LoadOptions | None" = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Greedy prefix -> suffix windows along a book (Ma et al. 2025): similarity panel per window,
    per-book summary, plot; in autoregressive mode, the reconstruction.

    ``book`` is a UTF-8 text file or a :class:`~rotelab.extraction.book.Book`. The paper's
    prefix and trims are fitted to the model's context and the book's length (recorded in the
    manifest). ``--long-text`` does not apply: the book is always cut into windows that fit.
    Returns ``book_summary.json``'s content.
    """
    from rotelab.core.api import as_model
    from rotelab.core.runs import open_run
    from rotelab.extraction.book import BookConfig, as_book, plan_book
    from rotelab.extraction.workflows import run_book
    from rotelab.report import build_report

    cfg = config or BookConfig()
    cfg.validate()
    _check_seed(seed)
    bk = as_book(book)
    lm = as_model(model, _load(load))
    plan = plan_book(lm, bk, cfg)  # context and book length: refused here, before the run folder
    options = {"model": _model_option(model, lm), "book": str(bk.path) if bk.path else bk.name, **asdict(cfg), "dtype": str(getattr(lm, "dtype", ""))}
    if bk.path is None:
        options["book_sha256"] = _content_hash(bk.text)
    with open_run(out, "extract book", options, seed=seed, inputs={"book": bk.path}, models={"model": lm}, overwrite=overwrite, volatile=("batch_size",)) as run:
        result = run_book(lm, plan, run, seed=seed, progress=progress)
        build_report(run.path)
    return result


def extract_samples(
    model: "LanguageModel | Path | str",
    data: "Sequence[Sample] | Sequence[str] | Path | str",
    *,
    out: Path | str | None = None,
    config: "SamplesConfig | None" = None,
    load: "LoadOptions | None" = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Per sample (Carlini et al. 2023; Tirumala et al. 2022; memaudit): k-extractability, exact
    memorization, extraction strength, regurgitation; rates with Clopper-Pearson intervals,
    overall and per ``copies`` when the samples carry it.

    ``data`` is a JSONL file (``text``, optional ``id``, ``copies``), samples or strings. Only each
    sample's first prefix + suffix tokens are read, so a text longer than the context needs no
    truncation or windowing: such texts are counted (manifest note ``long_text``), and
    ``--long-text error`` refuses them. Returns ``samples_summary.json``'s content.
    """
    from rotelab.core.api import as_model, as_samples
    from rotelab.core.runs import open_run
    from rotelab.core.data import samples_to_rows
    from rotelab.core.signals import refuse_long_texts
    from rotelab.extraction.samples import SamplesConfig, longer_than_context
    from rotelab.extraction.workflows import run_samples
    from rotelab.report import build_report

    cfg = config or SamplesConfig()
    cfg.validate()
    is_file = isinstance(data, (str, Path))
    samples = as_samples(data, role=Path(data).stem if is_file else "data")  # type: ignore[arg-type]
    lm = as_model(model, _load(load))
    cfg.check_fits(lm)
    where = str(data) if is_file else "data"
    refuse_long_texts(lm, samples, where=where)
    long = longer_than_context(lm, samples)
    options = {"model": _model_option(model, lm), "data": where if is_file else "in memory", **asdict(cfg), "dtype": str(getattr(lm, "dtype", "")), "long_text": lm.long_text}
    if not is_file:
        options["data_sha256"] = _content_hash(samples_to_rows(samples))
    with open_run(out, "extract samples", options, inputs={"data": data if is_file else None}, models={"model": lm}, overwrite=overwrite, volatile=("batch_size",)) as run:  # type: ignore[dict-item]
        if long:
            n = cfg.prefix_tokens + cfg.suffix_tokens
            run.note("long_text", {"policy": lm.long_text, "max_length": lm.max_length, "n_texts": len(samples), "n_long": len(long), "example_ids": [s for s, _ in long[:10]]},
                     say=f"{len(long)} of {len(samples)} texts are longer than the context of {lm.max_length} tokens; extraction reads only their first {n} tokens")
        result = run_samples(lm, samples, cfg, run, progress=progress)
        build_report(run.path)
    return result


def weightdiff(
    base: Path | str,
    *,
    tuned: Path | str | None = None,
    adapter: Path | str | None = None,
    out: Path | str | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Where a fine-tune changed the weights (Ma et al. 2025): R = |dW| / max(|W|, eps) by layer
    and module type, the attention / MLP ratio, a heatmap; dW from a full checkpoint (``tuned``)
    or a PEFT LoRA adapter (``adapter``: dW = (alpha / r) B A). Weights stream from safetensors.

    Returns ``weightdiff.json`` without its per-tensor rows, per-cell table and histogram.
    """
    from rotelab.core.models import resolve_model_dir
    from rotelab.core.runs import open_run
    from rotelab.extraction.weightdiff import check_sources
    from rotelab.extraction.workflows import run_weightdiff, weightdiff_identity
    from rotelab.report import build_report

    if (tuned is None) == (adapter is None):
        raise RotelabError("give exactly one of --tuned (a full checkpoint) or --adapter (a PEFT LoRA folder)")
    base_dir = resolve_model_dir(base)
    tuned_dir = resolve_model_dir(tuned) if tuned is not None else None
    if adapter is not None and not Path(adapter).is_dir():
        raise RotelabError(f"--adapter {adapter}: not a folder (a PEFT LoRA adapter folder holds adapter_config.json and safetensors)")
    check_sources(base_dir, tuned=tuned_dir, adapter=Path(adapter) if adapter is not None else None)
    kw = {"tuned": tuned_dir} if tuned_dir is not None else {"adapter": Path(adapter)}  # type: ignore[arg-type]
    options = {"base": str(base), "tuned": str(tuned) if tuned is not None else None, "adapter": str(adapter) if adapter is not None else None}
    with open_run(out, "weightdiff", options, overwrite=overwrite, **weightdiff_identity(base_dir, **kw)) as run:
        result = run_weightdiff(base_dir, run, **kw)
        build_report(run.path)
    return result


def books_experiment(
    testbed: Path | str | None = None,
    *,
    preset: str = "books",
    out: Path | str | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """The books experiment (Ma et al. 2025) on a books testbed: duplication vs median Jaccard,
    autoregressive reconstruction, suppression by refusal fine-tuning and its undoing by a LoRA
    on other books, weight diff of both.

    ``testbed``: a books testbed folder (``rotelab testbed build --preset books``); without one,
    the ``preset`` testbed is built (resumably) in ``<out>/testbed``. Returns the headline figures
    (the full result is ``books_experiment.json``).
    """
    from rotelab.core.models import fingerprint_folder
    from rotelab.core.runs import open_run
    from rotelab.extraction.books.experiment import BooksTestbed, headline, run_books_experiment, spec_for
    from rotelab.extraction.books.testbed import assign_roles, build_books_testbed, get_spec
    from rotelab.report import build_report

    _check_seed(seed)
    tb = BooksTestbed.read(testbed) if testbed is not None else None
    spec = None
    if tb is None:
        spec = get_spec(preset)
        roles = set(assign_roles(spec.plan).values())
        if not {"held_back", "other"} <= roles:
            raise RotelabError(f"--preset {preset}: has no held-back and other excerpts to suppress and undo (use books or books-micro)")
    options = {"testbed": str(testbed) if testbed is not None else None, "preset": preset if testbed is None else None}
    inputs = {"testbed_excerpts": tb.root / "excerpts.jsonl"} if tb else {}
    models = {"testbed": fingerprint_folder(tb.model)} if tb else {}
    with open_run(out, "extract books-experiment", options, seed=seed, inputs=inputs, models=models, overwrite=overwrite) as run:  # type: ignore[arg-type]
        if tb is None:
            build_books_testbed(run.path / "testbed", seed=seed, progress=progress, spec=spec)  # type: ignore[arg-type]
            tb = BooksTestbed.read(run.path / "testbed")
            run.add_input("testbed_excerpts", tb.root / "excerpts.jsonl")
            run.add_model("testbed", fingerprint_folder(tb.model))
        result = run_books_experiment(tb, run, seed=seed, spec=spec_for(tb.root), progress=progress)
        build_report(run.path)
    return headline(result)


def _check_seed(seed: int) -> None:
    if not (isinstance(seed, int) and seed >= 0):
        raise RotelabError(f"--seed must be an integer >= 0; got {seed}")
