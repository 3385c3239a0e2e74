"""The books experiment on a books testbed (Ma et al. 2025, *Memorization: A Close Look at Books*).

1. Popularity: per excerpt, sliding-mode median Jaccard (true ``prefix`` tokens -> greedy
   ``suffix`` tokens, stride = suffix); Spearman(copies, median Jaccard) over the trained excerpts
   with a bootstrap CI over excerpts; held-out (never trained) excerpts are the negative controls.
2. Reconstruction: autoregressive mode from each excerpt's first prefix; the verbatim length is
   the number of tokens reproduced after the seed before the first wrong token.
3. Suppression and its undoing: a full fine-tune on seeded chat-style refusals and unrelated
   instructions (text that never continues a book) until the mean median Jaccard of the
   *held-back* excerpts memorized at base (median Jaccard >= ``memorized``) falls to
   ``suppress_target`` x its base value; then a PEFT LoRA on prefix -> continuation pairs of the
   *other* duplicated excerpts (loss on the continuation only). Extraction of the held-back
   excerpts at base / suppressed / suppressed + LoRA: median Jaccard (bootstrap CI over windows)
   and exact-window share (Clopper-Pearson CI).
4. Weight diff (``rotelab weightdiff``): base -> suppressed (full checkpoints) and the LoRA adapter
   (dW = (alpha / r) B A) against the suppressed model, by block and by module type.

Each stage is a resumable step of the run folder: ``books_base``, ``books_suppress``,
``books_lora``, ``books_weightdiff``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


from rotelab.core.io import read_json
from rotelab.core.models import resolve_model_dir
from rotelab.core.runs import RunFolder, open_run
from rotelab.errors import RotelabError
from rotelab.extraction.books.summarize import STAGES, pooled, spearman_ci, summarize_excerpts
from rotelab.extraction.books.testbed import read_excerpts


@dataclass(frozen=True)
class ExperimentSpec:
    """Suppression, LoRA and statistics settings (defaults sized for the ``books`` testbed)."""

    n_refusals: int = 800
    suppress_lr: float = 2e-4
    suppress_batch: int = 8
    suppress_max_steps: int = 600
    suppress_check_every: int = 10
    suppress_target: float = 0.5  # stop when the memorized held-back excerpts' mean median Jaccard <= target x base
    memorized: float = 0.5  # held-back excerpts with base median Jaccard >= this are the suppression target
    lora_r: int = 8
    lora_alpha: int = 16
    lora_lr: float = 2e-3
    lora_steps: int = 200
    lora_batch: int = 8
    lora_probe_every: int = 25  # record held-back / other extraction along the LoRA run (the adapter kept is the last)
    n_boot: int = 2000
    batch_size: int = 64


MICRO_EXPERIMENT = ExperimentSpec(n_refusals=200, suppress_lr=3e-3, suppress_max_steps=120, suppress_check_every=10, lora_r=4, lora_alpha=8, lora_lr=1e-2, lora_steps=60, n_boot=200)
EXPERIMENT_SPECS = {"books": ExperimentSpec(), "books-micro": MICRO_EXPERIMENT}


def spec_for(testbed: Path) -> ExperimentSpec:
    """The experiment settings matching the testbed's preset (``books`` defaults otherwise)."""
    p = Path(testbed) / "manifest.json"
    name = read_json(p).get("preset", {}).get("name") if p.exists() else None
    return EXPERIMENT_SPECS.get(name or "books", ExperimentSpec())


@dataclass(frozen=True)
class BooksTestbed:
    """A books testbed, read and checked: its excerpts, window sizes and model folder."""

    root: Path
    excerpts: list[dict]
    prefix: int
    suffix: int
    model: Path

    @classmethod
    def read(cls, testbed: Path | str) -> "BooksTestbed":
        """One line naming the file for anything the experiment cannot run on."""
        root = Path(testbed)
        excerpts = read_excerpts(root)
        roles = {e.get("role") for e in excerpts}
        if not {"held_back", "other"} <= roles:
            raise RotelabError(f"{root / 'excerpts.jsonl'}: needs held_back and other excerpts (roles found: {sorted(r for r in roles if r)})")
        pre = read_json(root / "manifest.json").get("preset", {}) if (root / "manifest.json").exists() else {}
        return cls(root, excerpts, int(pre.get("prefix_tokens", 128)), int(pre.get("suffix_tokens", 32)), resolve_model_dir(root))

    def ids(self, role: str) -> list[str]:
        return [e["id"] for e in self.excerpts if e.get("role") == role]


# -- stages ---------------------------------------------------------------------------------------

def _hf(model, tok):
    from rotelab.core.models import HFLanguageModel

    return HFLanguageModel(model, tok)


def _load(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path).eval()


def _tokenizer(tb: BooksTestbed):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tb.model)


def memorized_held_back(run: RunFolder, tb: BooksTestbed, threshold: float) -> list[dict]:
    """Held-back excerpts whose base median Jaccard is >= ``threshold`` (what suppression must hide)."""
    base = {r["id"]: r for r in read_json(run.file("stage_base.json"))["excerpts"]}
    return [e for e in tb.excerpts if e.get("role") == "held_back" and (base[e["id"]]["median_jaccard"] or 0) >= threshold]


def measure_stage(run: RunFolder, tb: BooksTestbed, name: str, lm, *, recon_ids: list[str], spec: ExperimentSpec, seed: int) -> None:
    """Sliding windows of every excerpt (``windows_<name>.parquet``); per-excerpt and pooled
    summaries and reconstructions of ``recon_ids`` (``stage_<name>.json``).

    The memorized held-back excerpts are found at base (median Jaccard >= ``spec.memorized``) and
    kept for the later stages.
    """
    from rotelab.extraction.books.measure import measure_sliding, reconstruct

    t = time.time()
    cols = measure_sliding(lm, tb.excerpts, prefix=tb.prefix, suffix=tb.suffix, batch_size=spec.batch_size)
    res: dict[str, Any] = {"excerpts": summarize_excerpts(cols, tb.excerpts, seed=seed)}
    if name == "base":
        memorized = [r["id"] for r in res["excerpts"] if r["role"] == "held_back" and (r["median_jaccard"] or 0) >= spec.memorized]
    else:
        memorized = [e["id"] for e in memorized_held_back(run, tb, spec.memorized)]
    for role in ("held_back", "other", "held_out"):
        ids = tb.ids(role)
        res[role] = pooled(cols, ids, seed=seed) if ids else None
    res["held_back_memorized"] = pooled(cols, memorized, seed=seed) if memorized else None
    res["reconstruction"] = {e["id"]: reconstruct(lm, e["text"], prefix=tb.prefix, suffix=tb.suffix) for e in tb.excerpts if e["id"] in recon_ids}
    run.write_parquet(f"windows_{name}.parquet", cols)
    run.write_json(f"stage_{name}.json", res | {"seconds": round(time.time() - t, 1)})


def _most_duplicated(tb: BooksTestbed) -> list[str]:
    top = max(e["copies"] for e in tb.excerpts)
    return [e["id"] for e in tb.excerpts if e["copies"] == top]


def base_stage(run: RunFolder, tb: BooksTestbed, *, spec: ExperimentSpec, seed: int) -> None:
    """The testbed's model: every excerpt measured and reconstructed."""
    import torch

    torch.manual_seed(seed)
    measure_stage(run, tb, "base", _hf(_load(tb.model), _tokenizer(tb)), recon_ids=[e["id"] for e in tb.excerpts], spec=spec, seed=seed)


def suppression_stage(run: RunFolder, tb: BooksTestbed, *, spec: ExperimentSpec, seed: int) -> None:
    """Fine-tune the base model on refusal text until the memorized held-back excerpts' mean median
    Jaccard halves (``suppressed/``, ``suppression_log.json``), then measure it."""
    from rotelab.core.training import save_model_dir
    from rotelab.extraction.books.finetune import suppress
    from rotelab.extraction.books.measure import mean_median_jaccard
    from rotelab.extraction.books.refusals import quotes, refusal_texts

    hb = memorized_held_back(run, tb, spec.memorized)
    if not hb:
        raise RotelabError(f"no held-back excerpt reaches median Jaccard {spec.memorized} at base: nothing to suppress (train longer or with more copies)")
    model, tok = _load(tb.model), _tokenizer(tb)
    texts = refusal_texts(spec.n_refusals, seed=seed, quotes=quotes(tb.root, tb.excerpts))

    def check() -> float:
        return mean_median_jaccard(_hf(model, tok), hb, prefix=tb.prefix, suffix=tb.suffix, batch_size=spec.batch_size)

    log = suppress(model, tok, texts, lr=spec.suppress_lr, batch_size=spec.suppress_batch, max_steps=spec.suppress_max_steps,
                   check_every=spec.suppress_check_every, target_ratio=spec.suppress_target, seed=seed, check=check)
    save_model_dir(model, tok, run.file("suppressed"))
    run.write_json("suppression_log.json", log | {"examples": texts[:6]})
    measure_stage(run, tb, "suppressed", _hf(model, tok), recon_ids=_most_duplicated(tb), spec=spec, seed=seed)


def lora_stage(run: RunFolder, tb: BooksTestbed, *, spec: ExperimentSpec, seed: int) -> None:
    """A LoRA on the suppressed model, trained on the *other* excerpts (``lora/``, ``lora_log.json``),
    probed along the way on the memorized held-back and the other excerpts; then measured."""
    from rotelab.extraction.books.finetune import lora_undo
    from rotelab.extraction.books.measure import mean_median_jaccard

    others = [e for e in tb.excerpts if e.get("role") == "other"]
    hb = memorized_held_back(run, tb, spec.memorized)
    tok = _tokenizer(tb)
    kw = dict(prefix=tb.prefix, suffix=tb.suffix, batch_size=spec.batch_size)

    def probe(m) -> dict[str, float]:
        lm = _hf(m, tok)
        return {"held_back_memorized_mean_median_jaccard": mean_median_jaccard(lm, hb, **kw), "other_mean_median_jaccard": mean_median_jaccard(lm, others, **kw)}

    pm, log = lora_undo(_load(run.file("suppressed")), tok, others, prefix=tb.prefix, suffix=tb.suffix, r=spec.lora_r, alpha=spec.lora_alpha, lr=spec.lora_lr,
                        steps=spec.lora_steps, batch_size=spec.lora_batch, probe_every=spec.lora_probe_every, seed=seed, probe=probe)
    pm.save_pretrained(run.file("lora"))
    run.write_json("lora_log.json", log)
    measure_stage(run, tb, "lora", _hf(pm, tok), recon_ids=_most_duplicated(tb), spec=spec, seed=seed)


def weightdiff_stage(run: RunFolder, tb: BooksTestbed) -> None:
    """Weight diffs base -> suppressed and of the LoRA adapter, each a ``weightdiff`` run folder
    inside this one; their summaries in ``weightdiff_summary.json``."""
    from rotelab.extraction.workflows import run_weightdiff, weightdiff_identity

    sup, lora = run.file("suppressed"), run.file("lora")
    out = {}
    for name, base, kw in (("suppression", tb.model, {"tuned": sup}), ("lora", sup, {"adapter": lora})):
        options = {"base": str(base)} | {k: str(v) for k, v in kw.items()}
        with open_run(run.file(f"weightdiff_{name}"), "weightdiff", options, **weightdiff_identity(base, **kw)) as sub:
            out[name] = _wd_summary(run_weightdiff(base, sub, **kw))
    run.write_json("weightdiff_summary.json", out)


def _wd_summary(w: dict[str, Any]) -> dict[str, Any]:
    keep = ("n_weights", "share_changed_gt_1pct", "share_changed_gt_10pct", "share_changed_gt_100pct", "mean_relative_change", "relative_frobenius")
    return {k: w.get(k) for k in keep} | {
        "attention_mlp_ratio": w.get("attention_mlp_ratio"), "attention_mlp_ratio_reason": w.get("attention_mlp_ratio_reason"),
        "lower_quarter_share_of_changed_gt_1pct": w.get("lower_quarter_share_of_changed_gt_1pct"),
        "by_type": {t: {k: v[k] for k in keep} for t, v in w["by_type"].items()},
        "by_layer": {l: {k: v[k] for k in keep} for l, v in w["by_layer"].items()},
    }


# -- the whole experiment ---------------------------------------------------------------------------

def assemble(run: RunFolder, tb: BooksTestbed, *, seed: int, spec: ExperimentSpec) -> dict[str, Any]:
    """books_experiment.json from the stage files: popularity, reconstruction, suppression table, weight diff."""
    excerpts = tb.excerpts
    st = {s: read_json(run.file(f"stage_{s}.json")) for s in STAGES}
    base = {e["id"]: e for e in st["base"]["excerpts"]}
    trained = [e for e in excerpts if e["copies"] > 0]
    rho = spearman_ci([e["copies"] for e in trained], [base[e["id"]]["median_jaccard"] for e in trained], n_boot=spec.n_boot, seed=seed)
    rho_all = spearman_ci([e["copies"] for e in excerpts], [base[e["id"]]["median_jaccard"] for e in excerpts], n_boot=spec.n_boot, seed=seed)
    held_out = [base[e["id"]] for e in excerpts if e["copies"] == 0]
    recon = st["base"]["reconstruction"]
    best = max(recon.values(), key=lambda r: r["verbatim_tokens_from_seed"]) if recon else None
    table = []
    for e in excerpts:
        if e.get("role") != "held_back":
            continue
        row = {"excerpt": e["id"], "copies": e["copies"]}
        for s in STAGES:
            x = next(r for r in st[s]["excerpts"] if r["id"] == e["id"])
            row[s] = {"median_jaccard": x["median_jaccard"], "median_jaccard_ci": x["median_jaccard_ci"], "exact": x["exact"]}
            if e["id"] in st[s]["reconstruction"]:
                row[s]["verbatim_tokens_from_seed"] = st[s]["reconstruction"][e["id"]]["verbatim_tokens_from_seed"]
        table.append(row)
    groups = {g: {s: st[s].get(g) for s in STAGES} for g in ("held_back_memorized", "held_back", "other", "held_out")}
    sup_log, lora_log = read_json(run.file("suppression_log.json")), read_json(run.file("lora_log.json"))
    result = {
        "testbed": str(tb.root), "seed": seed, "prefix_tokens": tb.prefix, "suffix_tokens": tb.suffix, "spec": asdict(spec),
        "n_excerpts": len(excerpts), "n_trained": len(trained), "n_held_out": len(held_out),
        "popularity": {
            "by_excerpt": [{k: base[e["id"]][k] for k in ("id", "copies", "role", "n_windows", "median_jaccard", "median_jaccard_ci", "exact")} for e in excerpts],
            "spearman_trained": rho, "spearman_with_held_out": rho_all,
            "held_out_median_jaccard": [h["median_jaccard"] for h in held_out],
            "held_out_max_median_jaccard": max((h["median_jaccard"] for h in held_out), default=None),
        },
        "reconstruction": {"by_excerpt": recon, "most_duplicated_copies": max(e["copies"] for e in excerpts),
                           "largest_verbatim_tokens_from_seed": best["verbatim_tokens_from_seed"] if best else None,
                           "excerpt_tokens_after_seed": best["reconstructable_tokens"] if best else None},
        "suppression": {"steps": sup_log["steps"], "reached_target": sup_log["reached_target"], "target": sup_log["target"], "seconds": sup_log["seconds"], "log": sup_log["log"], "examples": sup_log.get("examples", [])},
        "lora": dict(lora_log),
        "table": table, "groups": groups, "weightdiff": read_json(run.file("weightdiff_summary.json")),
        "seconds": {s: st[s].get("seconds") for s in STAGES},
    }
    run.write_json("books_experiment.json", result)
    return result


def run_books_experiment(testbed: Path | str | BooksTestbed, run: RunFolder, *, seed: int = 0, spec: ExperimentSpec = ExperimentSpec(), progress: bool = True) -> dict[str, Any]:
    """The whole experiment on a books testbed, into ``run`` (resumable); returns the result.

    Writes ``windows_<stage>.parquet``, ``stage_<stage>.json``, ``suppressed/`` (model),
    ``lora/`` (adapter), ``weightdiff_suppression/`` and ``weightdiff_lora/`` (weightdiff runs),
    ``books_experiment.json`` and figures.
    """
    from rotelab.extraction.books.plots import plot_duplication, plot_lora_trajectory, plot_suppression

    tb = testbed if isinstance(testbed, BooksTestbed) else BooksTestbed.read(testbed)
    run.note("books_experiment_config", {"testbed": str(tb.root), "prefix_tokens": tb.prefix, "suffix_tokens": tb.suffix, **asdict(spec)})
    run.step("books_base", lambda: base_stage(run, tb, spec=spec, seed=seed))
    run.step("books_suppress", lambda: suppression_stage(run, tb, spec=spec, seed=seed))
    run.step("books_lora", lambda: lora_stage(run, tb, spec=spec, seed=seed))
    run.step("books_weightdiff", lambda: weightdiff_stage(run, tb))
    result = assemble(run, tb, seed=seed, spec=spec)
    run.figure("books_duplication_vs_jaccard", plot_duplication(result))
    run.figure("books_suppression", plot_suppression(result))
    if result["lora"].get("trajectory"):
        run.figure("books_lora_trajectory", plot_lora_trajectory(result))
    return result


def headline(res: dict[str, Any]) -> dict[str, Any]:
    """The figures ``rotelab extract books-experiment`` prints (the full result is books_experiment.json)."""
    pop, rec = res["popularity"], res["reconstruction"]
    return {
        "spearman_copies_vs_median_jaccard": pop["spearman_trained"],
        "median_jaccard_by_excerpt": {r["id"]: {"copies": r["copies"], "median_jaccard": r["median_jaccard"], "ci": r["median_jaccard_ci"]} for r in pop["by_excerpt"]},
        "held_out_max_median_jaccard": pop["held_out_max_median_jaccard"],
        "largest_verbatim_tokens_from_seed": rec["largest_verbatim_tokens_from_seed"],
        "suppression_table": {g: {s: (v[s]["median_jaccard"] if v[s] else None) for s in v} for g, v in res["groups"].items()},
        "suppression_steps": res["suppression"]["steps"],
        "weightdiff_attention_mlp_ratio": {k: w["attention_mlp_ratio"] for k, w in res["weightdiff"].items()},
    }
