"""``steer eval``: recitation vs held-out quality under each steering mode (the DMS experiment).

Per condition (none, static at several alpha, dynamic, gated, optional contrastive):

* verbatim rate: greedy continuation of held-out memorized prompts equals the known one
  (Clopper-Pearson 95% CI), and its relative reduction vs no steering;
* held-out cross-entropy: teacher-forced NLL per token on non-member passages, every position
  steered; relative change vs none with a paired bootstrap 95% CI over passages
  (:func:`rotelab.core.stats.paired_bootstrap_ci`);
* fluency of what replaces the recitation: per-token NLL of the steered continuation under the
  unsteered model, and its share of distinct tokens (suppression by degenerate loops is not
  generalization);
* paraphrase accuracy: the greedy answer to a paraphrased question of a trained fact contains
  the trained answer (Clopper-Pearson 95% CI).

Goal (issue): dynamic cuts verbatim recall >= 50% with |dCE| <= 2%, and at equal suppression
hurts CE less than static: dCE < static's dCE interpolated at the same suppression (signed: a
CE drop is no harm). The probe /
steering-success relation: among prompts recited without steering, AUROC of the unsteered probe
score at the last prompt token for "stopped reciting" (arXiv 2605.05715 found ~0 correlation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from rotelab.core import stats
from rotelab.core.runs import RunFolder
from rotelab.steering.causal import token_match
from rotelab.steering.labels import Item, verbatim
from rotelab.errors import RotelabError
from rotelab.steering.steer import DIRECTIONS, SteerConfig, Steering, generate, steered_nll

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel
    from rotelab.steering.probe import Probe


@dataclass(frozen=True)
class EvalConfig:
    static_alphas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    dynamic_alphas: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    gated_alphas: tuple[float, ...] = (2.0, 4.0)
    tau: float = 0.5
    contrastive_beta: float = 0.0  # > 0 adds dynamic(alpha=dynamic_alphas[1]) + contrastive logits
    random_alpha: float = 1.0  # > 0 adds static steering along a random direction of the same length (control)
    direction: str = "diffmean"
    max_ce_texts: int = 200
    max_paraphrases: int = 200
    answer_extra_tokens: int = 2
    batch_size: int = 64

    def validate(self) -> None:
        """One line naming the command's option for a value out of range."""
        for opt, alphas in (("--static-alphas", self.static_alphas), ("--dynamic-alphas", self.dynamic_alphas), ("--gated-alphas", self.gated_alphas)):
            if not all(np.isfinite(alphas)):
                raise RotelabError(f"{opt} must be finite numbers; got {','.join(f'{a:g}' for a in alphas)}")
        if not 0.0 <= self.tau <= 1.0:
            raise RotelabError(f"--tau must be in [0, 1]; got {self.tau}")
        if not self.contrastive_beta >= 0 or not self.random_alpha >= 0:
            raise RotelabError(f"--beta and random_alpha must be >= 0; got {self.contrastive_beta}, {self.random_alpha}")
        if self.contrastive_beta > 0 and not self.dynamic_alphas:
            raise RotelabError("--beta > 0 needs at least one --dynamic-alphas strength (the contrastive condition steers dynamically)")
        if self.direction not in DIRECTIONS:
            raise RotelabError(f"--direction must be one of {', '.join(DIRECTIONS)}; got '{self.direction}'")
        for opt, v in (("max_ce_texts", self.max_ce_texts), ("max_paraphrases", self.max_paraphrases), ("answer_extra_tokens", self.answer_extra_tokens)):
            if v < 0:
                raise RotelabError(f"{opt} must be >= 0; got {v}")
        if self.batch_size < 1:
            raise RotelabError(f"--batch-size must be >= 1; got {self.batch_size}")


def conditions(cfg: EvalConfig) -> list[tuple[str, SteerConfig | None]]:
    """(name, config) for every condition; None = no steering."""
    out: list[tuple[str, SteerConfig | None]] = [("none", None)]
    out += [(f"static a={a:g}", SteerConfig("static", a, direction=cfg.direction)) for a in cfg.static_alphas]
    out += [(f"dynamic a_max={a:g}", SteerConfig("dynamic", a, direction=cfg.direction)) for a in cfg.dynamic_alphas]
    out += [(f"gated a={a:g} tau={cfg.tau:g}", SteerConfig("gated", a, tau=cfg.tau, direction=cfg.direction)) for a in cfg.gated_alphas]
    if cfg.random_alpha > 0:
        out.append((f"static random direction a={cfg.random_alpha:g}", SteerConfig("static", cfg.random_alpha, direction="random")))
    if cfg.contrastive_beta > 0:
        a = cfg.dynamic_alphas[min(1, len(cfg.dynamic_alphas) - 1)]
        out.append((f"dynamic a_max={a:g} + contrastive beta={cfg.contrastive_beta:g}", SteerConfig("dynamic", a, beta=cfg.contrastive_beta, direction=cfg.direction)))
    return out


def ce_change_ci(nll: np.ndarray, nll0: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> list[float] | None:
    """Paired bootstrap 95% interval over texts of sum(nll) / sum(nll0) - 1 (the relative CE change;
    both runs score the same tokens, so the token count cancels)."""
    ci = stats.paired_bootstrap_ci((nll, nll0), lambda a, b: a.sum() / b.sum() - 1, n_boot=n_boot, seed=seed)
    return list(ci) if ci is not None else None


def continuation_quality(lm, items: list[Item], gens: list[list[int]], *, batch_size: int) -> tuple[float, float]:
    """Fluency of generated continuations: mean per-token NLL under the *unsteered* model, and the
    mean share of distinct tokens (low = repetition loops such as ', and , and')."""
    full, _, _ = steered_nll(lm, [it.prompt + g for it, g in zip(items, gens)], batch_size=batch_size)
    pre, _, _ = steered_nll(lm, [it.prompt for it in items], batch_size=batch_size)
    n = sum(len(g) for g in gens)
    return float((full - pre).sum() / n), float(np.mean([len(set(g)) / len(g) for g in gens]))


def _answer_hits(lm, items: list[Item], gens: list[list[int]]) -> np.ndarray:
    return np.array([it.answer.strip() in lm.detokenize(g) for it, g in zip(items, gens)], dtype=int)


def run_eval(lm: "HFLanguageModel", probe: "Probe", run: RunFolder, cfg: EvalConfig, *, mem: list[Item], ce_texts: list[list[int]], paraphrases: list[Item], progress: bool = False) -> dict:
    """Evaluate every condition; write ``steer_eval.json``, ``alpha_log.parquet`` and figures into ``run``."""
    mem = [it for it in mem if it.continuation]
    ce_texts = ce_texts[: cfg.max_ce_texts]
    para = paraphrases[: cfg.max_paraphrases]
    n_mem = max((len(it.continuation) for it in mem), default=1)
    n_ans = max((len(lm.tokenize([" " + it.answer])[0]) for it in para), default=1) + cfg.answer_extra_tokens
    bs = cfg.batch_size
    rows, per_item, log = [], {}, {k: [] for k in ("condition", "set", "item", "token_index", "token", "alpha", "p_mem")}
    base = None
    for name, sc in conditions(cfg):
        st = Steering(probe, sc) if sc else None
        g_mem = generate(lm, [it.prompt for it in mem], n_mem, st, batch_size=bs, progress=progress) if mem else None
        g_para = generate(lm, [it.prompt for it in para], n_ans, st, batch_size=bs, progress=progress) if para else None
        nll, ntok, a_ce = steered_nll(lm, ce_texts, st, batch_size=bs, progress=progress) if ce_texts else (np.zeros(0), np.zeros(0), np.zeros(0))
        hits = verbatim(lm, mem, g_mem.tokens) if mem else np.zeros(0, dtype=int)
        tm = token_match(mem, g_mem.tokens) if mem else np.zeros(0)
        ans = _answer_hits(lm, para, g_para.tokens) if para else np.zeros(0, dtype=int)
        q_nll, q_distinct = continuation_quality(lm, mem, g_mem.tokens, batch_size=bs) if mem else (None, None)
        row = {"condition": name, "mode": sc.mode if sc else "none", "direction": sc.direction if sc else None, "alpha": sc.alpha if sc else 0.0, "beta": sc.beta if sc else 0.0,
               "verbatim": stats.rate_ci(int(hits.sum()), len(hits)), "mean_token_match": float(tm.mean()) if len(tm) else None,
               "mem_continuation_nll_unsteered": q_nll, "mem_continuation_distinct_share": q_distinct,
               "ce": float(nll.sum() / ntok.sum()) if len(nll) else None, "n_ce_texts": len(ce_texts), "n_ce_tokens": int(ntok.sum()) if len(ntok) else 0,
               "paraphrase_accuracy": stats.rate_ci(int(ans.sum()), len(ans))}
        if st is not None:
            row["mean_alpha_mem"] = float(np.nanmean(g_mem.alpha)) if mem else None
            row["mean_alpha_paraphrase"] = float(np.nanmean(g_para.alpha)) if para else None
            row["mean_alpha_ce_texts"] = float(np.nanmean(a_ce)) if len(a_ce) else None
            for set_name, items, g in (("memorized", mem, g_mem), ("paraphrase", para, g_para)):
                for it, toks, al, pm in zip(items[:20], (g.tokens if g else [])[:20], (g.alpha if g else [])[:20], (g.p_mem if g else [])[:20]):
                    for j, (t, a, p) in enumerate(zip(toks, al, pm)):
                        for k, v in zip(log, (name, set_name, it.id, j, lm.detokenize([t]), a, p)):
                            log[k].append(v)
        if base is None:
            base = {"hits": hits, "nll": nll, "ntok": ntok, "tm": tm, "p_last": g_mem.p_mem if mem else None}
        else:
            r0 = base["hits"].mean() if len(hits) else 0
            row["verbatim_reduction"] = float(1 - hits.mean() / r0) if r0 > 0 else None
            row["ce_change"] = float(nll.sum() / base["nll"].sum() - 1) if len(nll) else None
            row["ce_change_ci"] = ce_change_ci(nll, base["nll"]) if len(nll) else None
        per_item[name] = {"hits": hits, "tm": tm}
        rows.append(row)
    _probe_scores(lm, probe, mem, base, bs)
    result = {"config": asdict(cfg), "site": probe.site, "n_mem": len(mem), "n_ce_texts": len(ce_texts), "n_paraphrases": len(para),
              "rows": rows, "goal": _goal(rows), "probe_vs_success": _probe_vs_success(base, per_item, rows)}
    run.write_json("steer_eval.json", result)
    if log["condition"]:
        run.write_parquet("alpha_log.parquet", log)
    _figure(run, result)
    return result


def _probe_scores(lm, probe, mem, base, bs) -> None:
    """p_mem at the last prompt token of each memorized prompt, unsteered (the probe's read-out)."""
    if not mem:
        return
    st = Steering(probe, SteerConfig("none"))
    base["p_last"] = np.array([p[0] for p in generate(lm, [it.prompt for it in mem], 1, st, batch_size=bs).p_mem])


def static_at(red: float, static: list[tuple[float, float, float]]) -> float | None:
    """dCE of static steering at suppression ``red``: along increasing alpha, linear between the last
    strength below ``red`` (alpha 0: no change) and the first reaching it; None if none reaches it.

    >>> round(static_at(0.75, [(1.0, 0.5, 0.01), (2.0, 1.0, 0.03), (4.0, 1.0, 0.09)]), 6)
    0.02
    """
    prev = (0.0, 0.0)
    for _, r, ce in sorted(static):
        if r >= red:
            return float(prev[1] + (ce - prev[1]) * (red - prev[0]) / (r - prev[0])) if r > prev[0] else float(ce)
        prev = (r, ce)
    return None


def _goal(rows: list[dict]) -> dict:
    """Which dynamic conditions meet >= 50% suppression with |dCE| <= 2%; static dCE at equal suppression."""
    static = [(r["alpha"], r["verbatim_reduction"], r["ce_change"]) for r in rows if r["mode"] == "static" and r["direction"] != "random" and r.get("verbatim_reduction") is not None]
    out = []
    for r in rows:
        if r["mode"] not in ("dynamic", "gated") or r.get("verbatim_reduction") is None:
            continue
        red, dce = r["verbatim_reduction"], r["ce_change"]
        at_equal = static_at(red, static)
        out.append({"condition": r["condition"], "verbatim_reduction": red, "ce_change": dce, "meets_goal": bool(red >= 0.5 and abs(dce) <= 0.02),
                    "static_ce_change_at_equal_suppression": at_equal, "less_harm_than_static": None if at_equal is None else bool(dce < at_equal)})
    reason = None if any(r["verbatim"]["hits"] for r in rows[:1]) else "no held-out memorized prompt is recited without steering: suppression undefined"
    return {"rows": out, "any_meets_goal": any(o["meets_goal"] for o in out), **({"reason": reason} if reason else {})}


def _probe_vs_success(base: dict, per_item: dict, rows: list[dict]) -> list[dict]:
    """Among prompts recited unsteered: AUROC of p_mem(last prompt token) for 'stopped reciting' under each condition."""
    from scipy.stats import spearmanr

    rec = base["hits"] == 1
    out = []
    for r in rows[1:]:
        h = per_item[r["condition"]]["hits"]
        stopped = (rec & (h == 0))[rec]
        p = base["p_last"][rec] if base.get("p_last") is not None and rec.any() else np.zeros(0)
        row = {"condition": r["condition"], "n_recited_unsteered": int(rec.sum()), "n_stopped": int(stopped.sum())}
        if 0 < stopped.sum() < len(stopped):
            row["auroc_p_mem_for_stopped"] = stats.roc_auc(p, stopped.astype(int))
        else:
            row["auroc_p_mem_for_stopped"] = None
            row["auroc_reason"] = "all or none of the recited prompts stopped"
        dtm = base["tm"] - per_item[r["condition"]]["tm"]
        pa = base.get("p_last")
        row["spearman_p_mem_vs_token_match_drop"] = float(spearmanr(pa, dtm).statistic) if pa is not None and len(pa) > 2 and np.std(dtm) > 0 else None
        out.append(row)
    return out


def _figure(run: RunFolder, res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in res["rows"] if r.get("ce_change") is not None and r["verbatim"]["rate"] is not None]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    marks = {"static": "o-", "dynamic": "s-", "gated": "^-"}
    for mode, mk in marks.items():
        sel = [r for r in rows if r["mode"] == mode and not r["beta"] and r["direction"] != "random"]
        if sel:
            ax.plot([100 * r["ce_change"] for r in sel], [r["verbatim"]["rate"] for r in sel], mk, label=mode)
            for r in sel:
                ax.annotate(f"{r['alpha']:g}", (100 * r["ce_change"], r["verbatim"]["rate"]), fontsize=6)
    for r in rows:
        if r["direction"] == "random" or r["beta"]:
            ax.plot(100 * r["ce_change"], r["verbatim"]["rate"], "x" if r["direction"] == "random" else "D", label=r["condition"])
    b = res["rows"][0]
    ax.axhline(b["verbatim"]["rate"], color="grey", lw=0.8, label="no steering")
    ax.axvline(2, color="red", lw=0.6, ls=":")
    ax.set(xlabel="held-out cross-entropy change (%)", ylabel="verbatim rate (held-out memorized)",
           title=f"suppression vs quality: n_mem={res['n_mem']}, n_ce={res['n_ce_texts']} texts, {res['site']}")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    run.figure("steer_tradeoff", fig)
