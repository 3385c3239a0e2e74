"""The books experiment on the ``books`` testbed (Ma et al. 2025, *Memorization: A Close Look at Books*).

1. Popularity: per excerpt, sliding-mode median Jaccard (true ``prefix`` tokens -> greedy
   ``suffix`` tokens, stride = suffix); Spearman(copies, median Jaccard) over the trained excerpts
   with a bootstrap CI over excerpts; held-out (never trained) excerpts are the negative controls.
2. Reconstruction: autoregressive mode from each excerpt's first prefix; the verbatim length is
   the number of tokens reproduced after the seed before the first wrong token.
3. Suppression and its undoing: a full fine-tune on seeded chat-style refusals and unrelated
   instructions (text that never continues a book) until the mean median Jaccard of the
   *held-back* excerpts memorized at base (median Jaccard >= ``memorized``) falls to
   ``suppress_target`` x its base value; then a PEFT LoRA
   on prefix -> continuation pairs of the *other* duplicated excerpts (loss on the continuation
   only). Extraction of the held-back excerpts at base / suppressed / suppressed + LoRA: median
   Jaccard (bootstrap CI over windows) and exact-window share (Clopper-Pearson CI).
4. Weight diff (``rotelab weightdiff``): base -> suppressed (full checkpoints) and the LoRA adapter
   (dW = (alpha / r) B A) against the suppressed model, by block and by module type.

Spearman rho = Pearson correlation of the ranks; Jaccard = |W(s) & W(g)| / |W(s) | W(g)| over
lower-cased word sets (``rotelab.core.similarity``).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rotelab.core import stats
from rotelab.core.runs import RunFolder, read_parquet
from rotelab.core.io import read_json
from rotelab.errors import RotelabError
from rotelab.extraction import book as B

STAGES = ("base", "suppressed", "lora")
STAGE_LABELS = {"base": "base", "suppressed": "suppressed", "lora": "suppressed + LoRA"}


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


# -- measurement ---------------------------------------------------------------------------------

def _cfg(prefix: int, suffix: int, mode: str = "sliding", batch_size: int = 64) -> B.BookConfig:
    return B.BookConfig(prefix_tokens=prefix, suffix_tokens=suffix, trim_start=0, trim_end=0, mode=mode, batch_size=batch_size)  # type: ignore[arg-type]


def measure_sliding(lm, excerpts: list[dict], *, prefix: int, suffix: int, batch_size: int = 64) -> dict[str, list]:
    """Sliding windows of every excerpt decoded in one batched greedy call; window columns + excerpt id/copies."""
    cfg = _cfg(prefix, suffix, batch_size=batch_size)
    if lm.max_length < prefix + suffix + 1:
        raise RotelabError(f"prefix {prefix} + suffix {suffix} + BOS exceed the model's context of {lm.max_length}")
    per, prompts = [], []
    for e in excerpts:
        bos, ids = B.book_tokens(lm, e["text"])
        wins = B.windows(ids, cfg)
        per.append((e, wins))
        prompts.extend(bos + p for _, p, _ in wins)
    gens = lm.greedy(prompts, suffix, batch_size=batch_size)
    cols: dict[str, list] = {"excerpt": [], "copies": [], "role": []}
    k = 0
    for e, wins in per:
        sc = B.score_windows(lm, wins, gens[k : k + len(wins)])
        k += len(wins)
        cols["excerpt"] += [e["id"]] * len(wins)
        cols["copies"] += [int(e["copies"])] * len(wins)
        cols["role"] += [e.get("role", "")] * len(wins)
        for key, v in sc.items():
            cols.setdefault(key, []).extend(v)
    return cols


def summarize_excerpts(cols: dict[str, list], excerpts: list[dict], *, seed: int = 0) -> list[dict[str, Any]]:
    """Per excerpt: median Jaccard (+ percentile-bootstrap CI over windows), exact-window share (+ Clopper-Pearson)."""
    ex = np.asarray(cols["excerpt"])
    jac, exact = np.asarray(cols["jaccard"], dtype=float), np.asarray(cols["exact"], dtype=float)
    out = []
    for e in excerpts:
        sel = ex == e["id"]
        j = jac[sel]
        out.append({
            "id": e["id"], "book": e["book"], "copies": int(e["copies"]), "role": e.get("role"), "n_windows": int(sel.sum()),
            "median_jaccard": float(np.median(j)) if len(j) else None, "median_jaccard_ci": stats.bootstrap_ci(j, np.median, seed=seed),
            "mean_jaccard": float(j.mean()) if len(j) else None, "median_rouge_l": float(np.median(np.asarray(cols["rouge_l"], dtype=float)[sel])) if len(j) else None,
            "exact": stats.rate_ci(int(exact[sel].sum()), int(sel.sum()), reason="no windows"),
        })
    return out


def pooled(cols: dict[str, list], ids: list[str], *, seed: int = 0) -> dict[str, Any]:
    """Windows of several excerpts pooled: median Jaccard (+ bootstrap CI) and exact share (+ Clopper-Pearson)."""
    sel = np.isin(np.asarray(cols["excerpt"]), ids)
    j = np.asarray(cols["jaccard"], dtype=float)[sel]
    return {"excerpts": ids, "n_windows": int(sel.sum()), "median_jaccard": float(np.median(j)) if len(j) else None,
            "median_jaccard_ci": stats.bootstrap_ci(j, np.median, seed=seed), "mean_jaccard": float(j.mean()) if len(j) else None,
            "exact": stats.rate_ci(int(np.asarray(cols["exact"], dtype=float)[sel].sum()), int(sel.sum()), reason="no windows")}


def reconstruct(lm, text: str, *, prefix: int, suffix: int) -> dict[str, Any]:
    """Autoregressive reconstruction from the first ``prefix`` tokens (book.py's autoregressive mode).

    ``verbatim_tokens_from_seed``: tokens after the seed equal to the excerpt before the first
    wrong token; ``longest_verbatim_run_tokens``: longest stretch of generated tokens equal to the
    excerpt at the same position (the run can re-synchronise after a substitution);
    ``exact_windows``: windows whose ``suffix`` tokens are all right.
    """
    bos, ids = B.book_tokens(lm, text)
    cfg = _cfg(prefix, suffix, mode="autoregressive")
    wins, gens, recon = B.decode_windows(lm, ids, cfg, bos=bos)
    assert recon is not None
    gen_part, true_part = recon[prefix:], ids[prefix : len(recon)]
    miss = next((i for i, (a, b) in enumerate(zip(gen_part, true_part)) if a != b), len(true_part))
    # every window emits exactly ``suffix`` tokens, so generated and true tokens stay position-aligned
    hit = np.asarray(gen_part, dtype=np.int64) == np.asarray(true_part, dtype=np.int64)
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], hit.astype(int), [0]]))))[::2] if hit.any() else np.array([0])
    sc = B.score_windows(lm, wins, gens)
    ex = np.asarray(sc["exact"], dtype=float)
    return {
        "n_tokens": len(ids), "seed_tokens": prefix, "reconstructable_tokens": len(true_part),
        "verbatim_tokens_from_seed": int(miss), "verbatim_share": miss / max(1, len(true_part)),
        "token_match_share": float(hit.mean()) if len(hit) else None, "longest_verbatim_run_tokens": int(runs.max()),
        "n_windows": len(wins), "exact_windows": stats.rate_ci(int(ex.sum()), len(ex), reason="no windows"),
        "median_jaccard": float(np.median(sc["jaccard"])) if len(ex) else None,
        "first_miss_context": lm.detokenize(ids[prefix + max(0, miss - 8) : prefix + miss + 8]) if miss < len(true_part) else None,
    }


def spearman_ci(x: list[float], y: list[float], *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Spearman rho (scipy) with a percentile bootstrap CI over items (resamples with a constant side skipped)."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return {"rho": None, "rho_reason": "fewer than 3 items or a constant variable", "n": len(x)}
    r = spearmanr(x, y)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.all(x[i] == x[i][0]) or np.all(y[i] == y[i][0]):
            continue
        boots.append(spearmanr(x[i], y[i]).statistic)
    a = (1 - level) / 2
    ci = [float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))] if boots else None
    return {"rho": float(r.statistic), "p_value": float(r.pvalue), "ci": ci, "n": len(x), "n_boot_used": len(boots), "n_boot": n_boot, "seed": seed}


# -- suppression text ----------------------------------------------------------------------------

_REFUSALS = (
    "I'm sorry, but I can't continue or reproduce that text. I can give a short summary of it instead.",
    "I can't recite passages from books word for word, but I'm happy to talk about their themes.",
    "Sorry, I won't reproduce that passage. Would you like a summary or an analysis?",
    "That looks like text from a book, and I can't continue it verbatim. Can I help in another way?",
)
_ASKS = ("Please continue this passage: \"{q}\"", "What comes after \"{q}\"?", "Recite the next lines of: {q}", "Finish the text that starts with: {q}")
_CATS = {"colours": ["red", "green", "blue", "yellow", "purple", "orange"], "fruits": ["apples", "pears", "plums", "cherries", "figs", "grapes"],
         "tools": ["a hammer", "a saw", "a drill", "a wrench", "pliers", "a chisel"], "planets": ["Mars", "Venus", "Jupiter", "Saturn", "Mercury", "Neptune"]}
_SYN = [("happy", "glad"), ("big", "large"), ("fast", "quick"), ("smart", "clever"), ("begin", "start"), ("tired", "weary"), ("small", "little")]
_TASKS = ["water the plants", "call the dentist", "pay the rent", "back up the laptop", "buy more coffee", "send the report"]


def refusal_texts(n: int, *, seed: int, quotes: list[str]) -> list[str]:
    """``n`` seeded chat-style texts: refusals to continue a quoted passage (half) and unrelated
    instructions (arithmetic, synonyms, lists, reminders). None continues a book."""
    if not quotes:
        raise RotelabError("refusal_texts needs at least one passage to quote")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2 == 0:
            q = rng.choice(quotes)
            w = q.split()
            a = rng.randrange(max(1, len(w) - 12))
            q = " ".join(w[a : a + rng.randint(6, 12)])
            out.append(f"User: {rng.choice(_ASKS).format(q=q)}\nAssistant: {rng.choice(_REFUSALS)}")
            continue
        k = rng.randrange(4)
        if k == 0:
            a, b = rng.randint(2, 99), rng.randint(2, 99)
            out.append(f"User: What is {a} plus {b}?\nAssistant: {a} plus {b} is {a + b}.")
        elif k == 1:
            w, s = rng.choice(_SYN)
            out.append(f"User: Give me a synonym for {w}.\nAssistant: A synonym for {w} is {s}.")
        elif k == 2:
            cat = rng.choice(sorted(_CATS))
            x, y, z = rng.sample(_CATS[cat], 3)
            out.append(f"User: Name three {cat}.\nAssistant: Here are three {cat}: {x}, {y} and {z}.")
        else:
            t = rng.choice(_TASKS)
            out.append(f"User: Write a short reminder to {t}.\nAssistant: Reminder: please remember to {t} today.")
    return out


# -- training loops ------------------------------------------------------------------------------

def _collate(seqs: list[list[int]], labels: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    T = max(len(s) for s in seqs)
    x = torch.full((len(seqs), T), pad, dtype=torch.long)
    y = torch.full((len(seqs), T), -100, dtype=torch.long)
    m = torch.zeros((len(seqs), T), dtype=torch.long)
    for r, (s, l) in enumerate(zip(seqs, labels)):
        x[r, : len(s)], y[r, : len(s)], m[r, : len(s)] = torch.tensor(s), torch.tensor(l), 1
    return x, m, y


def _step(model, opt, seqs, labels, pad: int) -> float:
    x, m, y = _collate(seqs, labels, pad)
    loss = model(input_ids=x, attention_mask=m, labels=y).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    return float(loss.item())


def suppress(model, tok, texts: list[str], *, spec: ExperimentSpec, seed: int, check) -> dict[str, Any]:
    """Full fine-tune (AdamW, constant lr) on ``texts`` until ``check() <= target`` or the step cap.

    ``check`` returns the held-back mean median Jaccard; it is evaluated every ``suppress_check_every`` steps.
    """
    L = model.config.n_positions
    ids = [x[:L] for x in tok(texts)["input_ids"]]
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.suppress_lr, weight_decay=0.0)
    log, step, value, target = [], 0, None, None
    t0 = time.time()
    value = check()
    target = spec.suppress_target * value
    log.append({"step": 0, "held_back_mean_median_jaccard": value})
    while step < spec.suppress_max_steps and value > target:
        model.train()
        for _ in range(spec.suppress_check_every):
            pick = [ids[rng.randrange(len(ids))] for _ in range(spec.suppress_batch)]
            loss = _step(model, opt, pick, pick, tok.pad_token_id)
            step += 1
        model.eval()
        value = check()
        log.append({"step": step, "loss": loss, "held_back_mean_median_jaccard": value})
    model.eval()
    return {"steps": step, "reached_target": bool(value <= target), "target": target, "final": value, "seconds": round(time.time() - t0, 1), "log": log,
            "n_texts": len(texts), "lr": spec.suppress_lr, "batch_size": spec.suppress_batch}


def continuation_pairs(tok, excerpts: list[dict], *, prefix: int, suffix: int) -> tuple[list[list[int]], list[list[int]]]:
    """BOS + prefix + continuation sequences (stride = suffix) with labels only on the continuation."""
    seqs, labels = [], []
    cfg = _cfg(prefix, suffix)
    for e in excerpts:
        ids = tok(e["text"], add_special_tokens=False)["input_ids"]
        for _, p, t in B.windows(ids, cfg):
            seqs.append([tok.bos_token_id] + p + t)
            labels.append([-100] * (1 + len(p)) + t)
    return seqs, labels


def lora_undo(model, tok, others: list[dict], *, prefix: int, suffix: int, spec: ExperimentSpec, seed: int, probe=None):
    """PEFT LoRA (attention c_attn/c_proj and MLP c_fc/c_proj, GPT-2 Conv1D) on prefix -> continuation pairs.

    ``probe(model) -> dict``, if given, is logged every ``lora_probe_every`` steps (a trajectory;
    the step count is fixed in advance, never chosen from the probe).
    """
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=0.0, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True)
    pm = get_peft_model(model, cfg)
    seqs, labels = continuation_pairs(tok, others, prefix=prefix, suffix=suffix)
    if not seqs:
        raise RotelabError("no prefix -> continuation pairs in the 'other' excerpts (too short)")
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=spec.lora_lr, weight_decay=0.0)
    rng = random.Random(seed)
    pm.train()
    log, t0 = [], time.time()
    trajectory = []
    for step in range(spec.lora_steps):
        if probe is not None and step % spec.lora_probe_every == 0:
            pm.eval()
            trajectory.append({"step": step} | probe(pm))
            pm.train()
        pick = [rng.randrange(len(seqs)) for _ in range(spec.lora_batch)]
        loss = _step(pm, opt, [seqs[i] for i in pick], [labels[i] for i in pick], tok.pad_token_id)
        if step % 25 == 0 or step == spec.lora_steps - 1:
            log.append({"step": step, "loss": loss})
    pm.eval()
    if probe is not None:
        trajectory.append({"step": spec.lora_steps} | probe(pm))
    n_train = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    return pm, {"steps": spec.lora_steps, "n_pairs": len(seqs), "r": spec.lora_r, "alpha": spec.lora_alpha, "lr": spec.lora_lr, "batch_size": spec.lora_batch,
                "trainable_parameters": n_train, "seconds": round(time.time() - t0, 1), "log": log, "trajectory": trajectory}


# -- orchestration -------------------------------------------------------------------------------

def _lm(model, tok):
    from rotelab.core.models import HFLanguageModel

    return HFLanguageModel(model, tok)


def _stage_result(lm, excerpts, *, prefix, suffix, seed, batch_size, recon_ids: list[str], memorized_ids: list[str] | None, memorized: float) -> tuple[dict[str, list], dict[str, Any]]:
    """Sliding windows of every excerpt, per-excerpt and pooled summaries, reconstructions of ``recon_ids``.

    ``memorized_ids`` None (the base stage): the held-back excerpts with median Jaccard >= ``memorized`` here.
    """
    cols = measure_sliding(lm, excerpts, prefix=prefix, suffix=suffix, batch_size=batch_size)
    res: dict[str, Any] = {"excerpts": summarize_excerpts(cols, excerpts, seed=seed)}
    if memorized_ids is None:
        memorized_ids = [r["id"] for r in res["excerpts"] if r["role"] == "held_back" and (r["median_jaccard"] or 0) >= memorized]
    for role in ("held_back", "other", "held_out"):
        ids = [e["id"] for e in excerpts if e.get("role") == role]
        res[role] = pooled(cols, ids, seed=seed) if ids else None
    res["held_back_memorized"] = pooled(cols, memorized_ids, seed=seed) if memorized_ids else None
    res["reconstruction"] = {e["id"]: reconstruct(lm, e["text"], prefix=prefix, suffix=suffix) for e in excerpts if e["id"] in recon_ids}
    return cols, res


def held_back_mean(lm, excerpts, *, prefix, suffix, batch_size) -> float:
    """Mean over ``excerpts`` of their sliding median Jaccard (the suppression target)."""
    cols = measure_sliding(lm, excerpts, prefix=prefix, suffix=suffix, batch_size=batch_size)
    return float(np.mean([s["median_jaccard"] for s in summarize_excerpts(cols, excerpts)]))


def memorized_held_back(run: RunFolder, excerpts: list[dict], threshold: float) -> list[str]:
    """Held-back excerpts whose base median Jaccard is >= ``threshold`` (what suppression must hide)."""
    base = {r["id"]: r for r in read_json(run.file("stage_base.json"))["excerpts"]}
    return [e["id"] for e in excerpts if e.get("role") == "held_back" and (base[e["id"]]["median_jaccard"] or 0) >= threshold]


def run_books_experiment(testbed: Path, run: RunFolder, *, seed: int = 0, spec: ExperimentSpec = ExperimentSpec(), progress: bool = True) -> dict[str, Any]:
    """The whole experiment on a books testbed, into ``run`` (resumable); returns the summary.

    Writes ``windows_<stage>.parquet``, ``stage_<stage>.json``, ``suppressed/`` (model),
    ``lora/`` (adapter), ``weightdiff_suppression/`` and ``weightdiff_lora/`` (weightdiff runs),
    ``books_experiment.json`` and figures.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rotelab.core.models import resolve_model_dir
    from rotelab.extraction.books_testbed import read_excerpts
    from rotelab.core.training import save_model_dir

    testbed = Path(testbed)
    excerpts = read_excerpts(testbed)
    man = read_json(testbed / "manifest.json")
    pre = man.get("preset", {})
    prefix, suffix = int(pre.get("prefix_tokens", 128)), int(pre.get("suffix_tokens", 32))
    base_dir = resolve_model_dir(testbed)
    tok = AutoTokenizer.from_pretrained(base_dir)
    roles = {e.get("role") for e in excerpts}
    if not {"held_back", "other"} <= roles:
        raise RotelabError(f"{testbed}/excerpts.jsonl: needs held_back and other excerpts (roles found: {sorted(r for r in roles if r)})")
    top = max(e["copies"] for e in excerpts)
    run.note("books_experiment_config", {"testbed": str(testbed), "prefix_tokens": prefix, "suffix_tokens": suffix, **asdict(spec)})
    kw = dict(prefix=prefix, suffix=suffix, seed=seed, batch_size=spec.batch_size)
    timings: dict[str, float] = {}

    def load(path: Path):
        return AutoModelForCausalLM.from_pretrained(path).eval()

    def stage(name: str, lm, recon_ids: list[str]) -> None:
        t = time.time()
        mem = None if name == "base" else memorized_held_back(run, excerpts, spec.memorized)
        cols, res = _stage_result(lm, excerpts, recon_ids=recon_ids, memorized_ids=mem, memorized=spec.memorized, **kw)
        run.write_parquet(f"windows_{name}.parquet", cols)
        run.write_json(f"stage_{name}.json", res | {"seconds": round(time.time() - t, 1)})

    def do_base() -> None:
        torch.manual_seed(seed)
        stage("base", _lm(load(base_dir), tok), [e["id"] for e in excerpts])

    run.step("books_base", do_base)
    recon_stage = [e["id"] for e in excerpts if e["copies"] == top]

    def do_suppress() -> None:
        model = load(base_dir)
        mem = set(memorized_held_back(run, excerpts, spec.memorized))
        if not mem:
            raise RotelabError(f"no held-back excerpt reaches median Jaccard {spec.memorized} at base: nothing to suppress (train longer or with more copies)")
        hb = [e for e in excerpts if e["id"] in mem]
        quotes = _quotes(testbed, excerpts)
        texts = refusal_texts(spec.n_refusals, seed=seed, quotes=quotes)
        log = suppress(model, tok, texts, spec=spec, seed=seed, check=lambda: held_back_mean(_lm(model, tok), hb, prefix=prefix, suffix=suffix, batch_size=spec.batch_size))
        save_model_dir(model, tok, run.file("suppressed"))
        run.write_json("suppression_log.json", log | {"examples": texts[:6]})
        stage("suppressed", _lm(model, tok), recon_stage)

    run.step("books_suppress", do_suppress)

    def do_lora() -> None:
        others = [e for e in excerpts if e.get("role") == "other"]
        mem = set(memorized_held_back(run, excerpts, spec.memorized))
        hb = [e for e in excerpts if e["id"] in mem]

        def probe(m) -> dict[str, float]:
            lm = _lm(m, tok)
            return {"held_back_memorized_mean_median_jaccard": held_back_mean(lm, hb, prefix=prefix, suffix=suffix, batch_size=spec.batch_size),
                    "other_mean_median_jaccard": held_back_mean(lm, others, prefix=prefix, suffix=suffix, batch_size=spec.batch_size)}

        pm, log = lora_undo(load(run.file("suppressed")), tok, others, prefix=prefix, suffix=suffix, spec=spec, seed=seed, probe=probe)
        pm.save_pretrained(run.file("lora"))
        run.write_json("lora_log.json", log)
        stage("lora", _lm(pm, tok), recon_stage)

    run.step("books_lora", do_lora)

    def do_weightdiff() -> None:
        from rotelab.extraction.workflows import run_weightdiff

        sup = run.file("suppressed")
        r1 = RunFolder(run.file("weightdiff_suppression"), command="weightdiff", options={"base": str(base_dir), "tuned": str(sup)})
        r2 = RunFolder(run.file("weightdiff_lora"), command="weightdiff", options={"base": str(sup), "adapter": str(run.file("lora"))})
        run.write_json("weightdiff_summary.json", {"suppression": _wd_summary(run_weightdiff(base_dir, r1, tuned=sup)), "lora": _wd_summary(run_weightdiff(sup, r2, adapter=run.file("lora")))})

    run.step("books_weightdiff", do_weightdiff)
    result = assemble(run, excerpts, seed=seed, spec=spec, prefix=prefix, suffix=suffix, testbed=testbed)
    run.figure("books_duplication_vs_jaccard", plot_duplication(result))
    run.figure("books_suppression", plot_suppression(result))
    if result["lora"].get("trajectory"):
        run.figure("books_lora_trajectory", plot_lora_trajectory(result))
    return result


def _quotes(testbed: Path, excerpts: list[dict]) -> list[str]:
    """Passages quoted in refusals: background books (trained, never measured); else other excerpts."""
    p = testbed / "background.jsonl"
    rows = [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines() if x.strip()] if p.exists() else []
    texts = [r["text"] for r in rows] or [e["text"] for e in excerpts if e.get("role") == "other"]
    return [" ".join(t.split()[i : i + 40]) for t in texts for i in range(0, max(1, len(t.split()) - 40), 40)]


def _wd_summary(w: dict[str, Any]) -> dict[str, Any]:
    keep = ("n_weights", "share_changed_gt_1pct", "share_changed_gt_10pct", "share_changed_gt_100pct", "mean_relative_change", "relative_frobenius")
    return {k: w.get(k) for k in keep} | {
        "attention_mlp_ratio": w.get("attention_mlp_ratio"), "attention_mlp_ratio_reason": w.get("attention_mlp_ratio_reason"),
        "lower_quarter_share_of_changed_gt_1pct": w.get("lower_quarter_share_of_changed_gt_1pct"),
        "by_type": {t: {k: v[k] for k in keep} for t, v in w["by_type"].items()},
        "by_layer": {l: {k: v[k] for k in keep} for l, v in w["by_layer"].items()},
    }


def assemble(run: RunFolder, excerpts: list[dict], *, seed: int, spec: ExperimentSpec, prefix: int, suffix: int, testbed: Path) -> dict[str, Any]:
    """books_experiment.json from the stage files: popularity, reconstruction, suppression table, weight diff."""
    st = {s: read_json(run.file(f"stage_{s}.json")) for s in STAGES}
    base = {e["id"]: e for e in st["base"]["excerpts"]}
    trained = [e for e in excerpts if e["copies"] > 0]
    rho = spearman_ci([e["copies"] for e in trained], [base[e["id"]]["median_jaccard"] for e in trained], n_boot=spec.n_boot, seed=seed)
    rho_all = spearman_ci([e["copies"] for e in excerpts], [base[e["id"]]["median_jaccard"] for e in excerpts], n_boot=spec.n_boot, seed=seed)
    held_out = [base[e["id"]] for e in excerpts if e["copies"] == 0]
    recon = st["base"]["reconstruction"]
    best = max(recon.values(), key=lambda r: r["verbatim_tokens_from_seed"]) if recon else None
    top = max(e["copies"] for e in excerpts)
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
    wd = read_json(run.file("weightdiff_summary.json"))
    sup_log, lora_log = read_json(run.file("suppression_log.json")), read_json(run.file("lora_log.json"))
    result = {
        "testbed": str(testbed), "seed": seed, "prefix_tokens": prefix, "suffix_tokens": suffix, "spec": asdict(spec),
        "n_excerpts": len(excerpts), "n_trained": len(trained), "n_held_out": len(held_out),
        "popularity": {
            "by_excerpt": [{k: base[e["id"]][k] for k in ("id", "copies", "role", "n_windows", "median_jaccard", "median_jaccard_ci", "exact")} for e in excerpts],
            "spearman_trained": rho, "spearman_with_held_out": rho_all,
            "held_out_median_jaccard": [h["median_jaccard"] for h in held_out],
            "held_out_max_median_jaccard": max((h["median_jaccard"] for h in held_out), default=None),
        },
        "reconstruction": {"by_excerpt": recon, "most_duplicated_copies": top,
                           "largest_verbatim_tokens_from_seed": best["verbatim_tokens_from_seed"] if best else None,
                           "excerpt_tokens_after_seed": best["reconstructable_tokens"] if best else None},
        "suppression": {"steps": sup_log["steps"], "reached_target": sup_log["reached_target"], "target": sup_log["target"], "seconds": sup_log["seconds"], "log": sup_log["log"], "examples": sup_log.get("examples", [])},
        "lora": {k: v for k, v in lora_log.items()},
        "table": table, "groups": groups, "weightdiff": wd,
        "seconds": {s: st[s].get("seconds") for s in STAGES},
    }
    run.write_json("books_experiment.json", result)
    return result


# -- figures -------------------------------------------------------------------------------------

def plot_duplication(res: dict[str, Any]):
    """Median Jaccard (bootstrap CI over windows) against copies; held-out at 0; Spearman in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["popularity"]["by_excerpt"]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    seen: dict[int, int] = {}
    for r in rows:
        k = seen[r["copies"]] = seen.get(r["copies"], -1) + 1  # k-th excerpt at this count: small x jitter, stacked labels
        y = r["median_jaccard"]
        x = r["copies"] * (1 + 0.12 * k) if r["copies"] else 0.08 * k
        lo, hi = r["median_jaccard_ci"] or (y, y)
        c = "tab:gray" if r["copies"] == 0 else ("tab:red" if r["role"] == "held_back" else "tab:blue")
        ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]], fmt="o", color=c, capsize=3, ms=5)
        ax.annotate(r["id"].removesuffix("_x0").removesuffix("_gut"), (x, y), fontsize=6, xytext=(5, 3 + 8 * k), textcoords="offset points", color=c)
    ax.set_xscale("symlog", linthresh=1)
    counts = sorted({r["copies"] for r in rows})
    ax.set_xticks(counts, [str(c) for c in counts])
    ax.set_xlim(-0.3, max(counts) * 2.2)
    ax.set_xlabel("copies in training (0 = held out)")
    ax.set_ylabel("median Jaccard (sliding windows)")
    ax.set_ylim(-0.03, 1.12)
    sp = res["popularity"]["spearman_trained"]
    rho = "—" if sp.get("rho") is None else f"{sp['rho']:.2f}" + (f" [{sp['ci'][0]:.2f}, {sp['ci'][1]:.2f}]" if sp.get("ci") else "")
    n_win = sum(r["n_windows"] for r in rows)
    ax.set_title(f"prefix {res['prefix_tokens']} -> {res['suffix_tokens']} greedy; {len(rows)} excerpts, {n_win} windows, seed {res['seed']}\n"
                 f"Spearman(copies, median Jaccard), trained n={sp['n']}: {rho}; red = held back, grey = never trained", fontsize=8)
    return fig


def plot_suppression(res: dict[str, Any]):
    """Held-back excerpts' median Jaccard at base / suppressed / suppressed + LoRA (bootstrap CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = res["table"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    w = 0.26
    for k, s in enumerate(STAGES):
        ys = [r[s]["median_jaccard"] for r in rows]
        cis = [r[s]["median_jaccard_ci"] or (y, y) for r, y in zip(rows, ys)]
        xs = np.arange(len(rows)) + (k - 1) * w
        ax.bar(xs, ys, w, label=STAGE_LABELS[s], yerr=[[y - c[0] for y, c in zip(ys, cis)], [c[1] - y for y, c in zip(ys, cis)]], capsize=2)
    ax.set_xticks(np.arange(len(rows)), [f"{r['excerpt'].removesuffix('_x0')}\n({r['copies']} copies)" for r in rows], fontsize=7)
    ax.set_ylabel("median Jaccard")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    sup, lo = res["suppression"], res["lora"]
    ax.set_title(f"held-back excerpts; suppression {sup['steps']} steps, LoRA r={lo['r']} {lo['steps']} steps on {lo['n_pairs']} pairs of other excerpts; seed {res['seed']}", fontsize=8)
    return fig


def plot_lora_trajectory(res: dict[str, Any]):
    """Mean median Jaccard of the memorized held-back excerpts and of the LoRA's own (other) excerpts along the LoRA run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = res["lora"]["trajectory"]
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    x = [t["step"] for t in tr]
    ax.plot(x, [t["held_back_memorized_mean_median_jaccard"] for t in tr], "o-", color="tab:red", label="held-back (memorized at base), never in the LoRA data")
    ax.plot(x, [t["other_mean_median_jaccard"] for t in tr], "s--", color="tab:blue", label="other excerpts (the LoRA's training pairs)")
    base = res["groups"]["held_back_memorized"]["base"]
    if base:
        ax.axhline(base["mean_jaccard"], color="grey", lw=0.8, ls=":", label="held-back at base (mean Jaccard)")
    ax.set_xlabel("LoRA step")
    ax.set_ylabel("mean of per-excerpt median Jaccard")
    ax.set_ylim(-0.03, 1.05)
    ax.legend(fontsize=7)
    lo = res["lora"]
    ax.set_title(f"LoRA r={lo['r']}, lr {lo['lr']}, batch {lo['batch_size']}, {lo['n_pairs']} pairs; steps fixed at {lo['steps']} in advance; seed {res['seed']}", fontsize=8)
    return fig


def _cell(x: dict[str, Any]) -> str:
    ci = x.get("median_jaccard_ci")
    e = x["exact"]
    j = "—" if x["median_jaccard"] is None else f"{x['median_jaccard']:.2f}" + (f" [{ci[0]:.2f},{ci[1]:.2f}]" if ci else "")
    r = "—" if e.get("rate") is None else f"{e['hits']}/{e['n']}={e['rate']:.2f} [{e['ci'][0]:.2f},{e['ci'][1]:.2f}]"
    return f"{j} | {r}"


def format_table(res: dict[str, Any]) -> str:
    """Plain-text summary: popularity, reconstruction, suppression table, weight diff."""
    pop, rec = res["popularity"], res["reconstruction"]
    sp = pop["spearman_trained"]
    lines = [f"books experiment (seed {res['seed']}, prefix {res['prefix_tokens']} -> greedy {res['suffix_tokens']}, {res['n_trained']} trained + {res['n_held_out']} held-out excerpts)", ""]
    lines.append("excerpt                      copies  median Jaccard [95% CI]  | exact windows [CP 95% CI]")
    for r in pop["by_excerpt"]:
        lines.append(f"{r['id']:<28} {r['copies']:>6}  {_cell(r)}")
    rho = "—" if sp.get("rho") is None else f"{sp['rho']:.3f}" + (f" [{sp['ci'][0]:.3f}, {sp['ci'][1]:.3f}]" if sp.get("ci") else "")
    lines += ["", f"Spearman(copies, median Jaccard), trained excerpts n={sp['n']}: {rho} (bootstrap over excerpts, {sp.get('n_boot_used')} resamples)",
              f"held-out median Jaccard: {', '.join(f'{v:.3f}' for v in pop['held_out_median_jaccard'])}", ""]
    for k, r in rec["by_excerpt"].items():
        if r["verbatim_tokens_from_seed"] > 0 or k in {t["excerpt"] for t in res["table"]}:
            lines.append(f"autoregressive {k}: {r['verbatim_tokens_from_seed']}/{r['reconstructable_tokens']} tokens verbatim from the {r['seed_tokens']}-token seed; "
                         f"longest verbatim run {r.get('longest_verbatim_run_tokens')}; exact windows {r['exact_windows']['hits']}/{r['n_windows']}")
    sup, lo = res["suppression"], res["lora"]
    lines += ["", f"suppression: {sup['steps']} full fine-tune steps on refusal/instruction text (target reached: {sup['reached_target']}); LoRA r={lo['r']}, {lo['steps']} steps on {lo['n_pairs']} prefix->continuation pairs of other excerpts", ""]
    lines.append(f"{'held-back excerpt':<24} {'copies':>6}  " + "  ||  ".join(f"{STAGE_LABELS[s]}: median J | exact" for s in STAGES))
    for r in res["table"]:
        lines.append(f"{r['excerpt']:<24} {r['copies']:>6}  " + "  ||  ".join(_cell(r[s]) for s in STAGES))
    for g, v in res["groups"].items():
        if v["base"]:
            lines.append(f"{'[' + g + ']':<24} {'':>6}  " + "  ||  ".join(_cell(v[s]) for s in STAGES))
    if lo.get("trajectory"):
        lines.append("LoRA trajectory (step: memorized held-back / other, mean median Jaccard): " + ", ".join(
            f"{t['step']}: {t['held_back_memorized_mean_median_jaccard']:.2f}/{t['other_mean_median_jaccard']:.2f}" for t in lo["trajectory"]))
    for name, w in res["weightdiff"].items():
        ratio = "—" if w["attention_mlp_ratio"] is None else f"{w['attention_mlp_ratio']:.2f}"
        by_layer = ", ".join(f"{l}: {v['mean_relative_change']:.3g}" for l, v in w["by_layer"].items())
        frob = ", ".join(f"{t} {v['relative_frobenius']:.3f}" for t, v in w["by_type"].items() if v["relative_frobenius"])
        fl = ", ".join(f"{l}: {v['relative_frobenius']:.3f}" for l, v in w["by_layer"].items())
        lq = w["lower_quarter_share_of_changed_gt_1pct"]
        lines.append(f"weightdiff {name}: >1% {w['share_changed_gt_1pct']:.3f}, >100% {w['share_changed_gt_100pct']:.4f}, attention/MLP mean-R ratio {ratio}, "
                     f"lower-quarter share of >1% {'—' if lq is None else f'{lq:.3f}'}; mean R by block {by_layer}; ||dW||/||W|| by type {frob}; by block {fl}")
    return "\n".join(lines)


def windows_table(run: RunFolder, stage: str) -> dict[str, np.ndarray]:
    return read_parquet(run.file(f"windows_{stage}.parquet"))


