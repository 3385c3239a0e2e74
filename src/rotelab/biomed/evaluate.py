"""``biomed eval``: ask the base and the fine-tuned model every question of the task, score the
answers, measure lexicalization, and score the pairs with the membership suite.

Steps (each resumable in the run folder): greedy answers, k sampled answers (latent knowledge),
lexicalization per arm, membership scores; then ``items.parquet`` (one row per question),
``metrics.json`` and the figures. Membership: training pairs are members, validation pairs
non-members; the attacks run on the fine-tuned model, ``reference`` with the base model as the
reference (what fine-tuning added to a pair's likelihood).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rotelab.biomed import metrics as M
from rotelab.biomed.task import Item, Task, answer_of, completion
from rotelab.errors import RotelabError

WHO = ("base", "tuned")


@dataclass(frozen=True)
class EvalConfig:
    """``rotelab biomed eval``."""

    k: int = 5  # sampled answers per question (latent knowledge)
    temperature: float = 1.0
    top_p: float = 1.0
    attacks: str = "loss,zlib,minkpp,reference"  # membership attacks scored on the pairs
    encoder: bool = True  # lexicalization with the offline sentence encoder too
    batch_size: int = 64
    n_boot: int = 1000
    seed: int = 0

    def validate(self) -> None:
        from rotelab.membership.attacks import resolve_attacks

        if self.k < 1:
            raise RotelabError(f"--k must be >= 1; got {self.k}")
        if not self.temperature > 0:
            raise RotelabError(f"--temperature must be > 0; got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise RotelabError(f"--top-p must be in (0, 1]; got {self.top_p}")
        if self.batch_size < 1:
            raise RotelabError(f"--batch-size must be >= 1; got {self.batch_size}")
        if self.n_boot < 100:
            raise RotelabError(f"--n-boot must be >= 100; got {self.n_boot}")
        if self.attacks:
            resolve_attacks(self.attacks)


def budget(lm, items: list[Item]) -> dict[str, int]:
    """New tokens per group: the longest gold answer in tokens, plus two."""
    out: dict[str, int] = {}
    for it, ids in zip(items, lm.tokenizer([completion(it.gold) for it in items], add_special_tokens=False)["input_ids"]):
        out[it.group] = max(out.get(it.group, 0), len(ids) + 2)
    return out


def check_fits(lm, items: list[Item]) -> None:
    """Every prompt and its answer budget fit the model's context (one line naming the question)."""
    need = budget(lm, items)
    for it, p in zip(items, lm.tokenize([it.prompt for it in items])):
        if len(p) + need[it.group] > lm.max_length:
            raise RotelabError(f"{it.group} {it.key}: prompt {len(p)} + answer {need[it.group]} tokens exceed the model's context of {lm.max_length}")


def answers(lm, items: list[Item], *, sampling=None, batch_size: int = 64, progress: bool = False, label: str = "") -> list[list[str]]:
    """Per question, the model's answers (one greedy, or ``sampling.n`` sampled), group by group."""
    from rotelab.core.generate import decode

    need = budget(lm, items)
    prompts = lm.tokenize([it.prompt for it in items])
    out: list[list[str]] = [[] for _ in items]
    for group in dict.fromkeys(it.group for it in items):
        idx = [i for i, it in enumerate(items) if it.group == group]
        dec = decode(lm, [prompts[i] for i in idx], need[group], sampling=sampling, batch_size=batch_size, progress=progress, label=f"{label} {group}")
        for i, conts in zip(idx, dec.tokens):
            out[i] = [answer_of(lm.detokenize(c)) for c in conts]
    return out


def _greedy(lms: dict, items: list[Item], cfg: EvalConfig, progress: bool) -> dict[str, list[str]]:
    return {w: [a[0] for a in answers(lms[w], items, batch_size=cfg.batch_size, progress=progress, label=f"{w} greedy")] for w in WHO}


def _sampled(lms: dict, items: list[Item], cfg: EvalConfig, progress: bool) -> dict[str, list[list[str]]]:
    from rotelab.core.generate import Sampling

    s = Sampling(temperature=cfg.temperature, top_p=cfg.top_p, n=cfg.k, seed=cfg.seed)
    return {w: answers(lms[w], items, sampling=s, batch_size=cfg.batch_size, progress=progress, label=f"{w} sampling") for w in WHO}


def lexicalization(task: Task, base, cfg: EvalConfig) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Per arm: alignment of term and identifier embeddings against the shuffled null, with the
    base model's hidden states and (if installed) the sentence encoder; per (arm, key) the pair's
    lexicalization under each."""
    from rotelab.biomed.lexical import alignment, encoder_embeddings, model_embeddings, pair_lexicalization

    p = task.pairs
    summary: dict[str, Any] = {}
    per_pair: dict[str, dict[str, float]] = {"model": {}, "encoder": {}}
    for arm in task.arms:
        idx = [i for i, a in enumerate(p["arm"]) if a == arm]
        terms, ids = [p["term"][i] for i in idx], [p["target"][i] for i in idx]
        keys = [f"{arm}/{p['key'][i]}" for i in idx]
        summary[arm] = {}
        spaces = {"model": lambda x: (model_embeddings(base, x), None)}
        if cfg.encoder:
            spaces["encoder"] = encoder_embeddings
        for space, embed in spaces.items():
            t, reason = embed(terms)
            if t is None:
                summary[arm][space] = {"alignment": None, "alignment_reason": reason}
                continue
            d, _ = embed(ids)
            summary[arm][space] = alignment(t, d, seed=cfg.seed)
            per_pair[space].update(zip(keys, pair_lexicalization(t, d).tolist()))
    return summary, per_pair


def membership(task: Task, items: list[Item], lms: dict, cfg: EvalConfig, progress: bool) -> dict[str, np.ndarray]:
    """Scores (higher = more member-like) of every question's text under the fine-tuned model."""
    from rotelab.core.signals import compute_signals
    from rotelab.membership.attacks import ATTACKS, resolve_attacks
    from rotelab.membership.context import AttackContext, MIAConfig

    names = resolve_attacks(cfg.attacks)
    texts = [it.text for it in items]
    sig = compute_signals(lms["tuned"], texts, batch_size=cfg.batch_size, progress=progress)
    ctx = AttackContext(lms["tuned"], texts, sig, MIAConfig(batch_size=cfg.batch_size, seed=cfg.seed), reference=lms["base"], progress=progress)
    return {a: ATTACKS[a].run(ctx) for a in names}


def items_table(items: list[Item], greedy: dict, sampled: dict, lex: dict, mia: dict) -> dict[str, np.ndarray]:
    """One row per question: answers, scores, lexicalization, membership."""
    rows: dict[str, Any] = {
        "group": [it.group for it in items], "arm": [it.arm for it in items], "direction": [it.direction for it in items],
        "key": [it.key for it in items], "split": [it.split for it in items], "popularity": np.array([it.popularity for it in items]),
        "bin": np.array([it.bin for it in items]), "prompt": [it.prompt for it in items], "gold": [it.gold for it in items],
    }
    for w in WHO:
        a = greedy[w]
        rows[f"{w}_answer"] = list(a)
        rows[f"{w}_em"] = np.array([M.exact_match(x, it.gold) for x, it in zip(a, items)])
        rows[f"{w}_synonym_em"] = np.array([M.synonym_match(x, it.accepted) for x, it in zip(a, items)])
        rows[f"{w}_latent"] = np.array([M.latent_share(s, it.gold) for s, it in zip(sampled[w], items)])
        rows[f"{w}_prefix"] = np.array([M.prefix_credit(x, it.gold) for x, it in zip(a, items)])
        rows[f"{w}_digits"] = np.array([M.digit_credit(x, it.gold) for x, it in zip(a, items)])
    rows["gain"] = rows["tuned_em"].astype(int) - rows["base_em"].astype(int)
    for space, values in lex.items():
        rows[f"lex_{space}"] = np.array([values.get(f"{it.arm}/{it.key}", np.nan) for it in items])
    for a, s in mia.items():
        rows[f"mia_{a}"] = np.asarray(s, dtype=float)
    return rows


def summarize(task: Task, rows: dict[str, np.ndarray], lex: dict[str, Any], cfg: EvalConfig) -> dict[str, Any]:
    """``metrics.json``: per group (arm/direction) and split, overall and per popularity bin; the
    lexicalization of each arm; the membership scores' AUC and their rank correlation with
    popularity and with the gain."""
    from scipy.stats import spearmanr

    from rotelab.core.stats import summarize as mia_summary

    group, split, b = np.array(rows["group"]), np.array(rows["split"]), rows["bin"]
    out: dict[str, Any] = {"groups": {}, "lexicalization": lex, "bins": task.meta["bins"], "membership": {}}
    kw = dict(seed=cfg.seed, n_boot=cfg.n_boot)
    for g in dict.fromkeys(rows["group"]):
        arm = g.split("/")[0]
        entry: dict[str, Any] = {"lexicalized": task.meta["arms"][arm]["lexicalized"], "bins": {}}
        for s in ("train", "validation"):
            entry[s] = M.summarize_items(rows, (group == g) & (split == s), **kw)
        for k in sorted(set(b[group == g].tolist())):
            entry["bins"][str(k)] = {s: M.summarize_items(rows, (group == g) & (split == s) & (b == k), **kw) for s in ("train", "validation")}
        out["groups"][g] = entry
    labels = (split == "train").astype(int)
    train = split == "train"
    with np.errstate(all="ignore"):
        for c in [c for c in rows if c.startswith("mia_")]:
            a = c[4:]
            s = np.nan_to_num(rows[c], nan=-1e9)
            r_pop = spearmanr(s[train], rows["popularity"][train])
            r_gain = spearmanr(s[train], rows["gain"][train])
            out["membership"][a] = mia_summary(s, labels, seed=cfg.seed, n_boot=cfg.n_boot) | {
                "spearman_popularity_train": _finite(r_pop.statistic), "spearman_gain_train": _finite(r_gain.statistic)}
    return out


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the command prints: per group, exact match and gain on training and validation terms."""
    out: dict[str, Any] = {}
    for g, e in metrics["groups"].items():
        out[g] = {s: {"base_em": e[s]["base_em"]["rate"], "tuned_em": e[s]["tuned_em"]["rate"], "gain": e[s]["gain"]["mean"], "gain_ci": e[s]["gain"]["ci"]}
                  for s in ("train", "validation")}
    lex = {arm: {space: v.get("lexicalization") for space, v in d.items()} for arm, d in metrics["lexicalization"].items()}
    return {"groups": out, "lexicalization": lex, "membership_auc": {a: m.get("auc") for a, m in metrics["membership"].items()}}


def evaluate(task: Task, lms: dict, run, cfg: EvalConfig, *, progress: bool = True) -> dict[str, Any]:
    """Run every step in the open run folder; returns the headline (``metrics.json`` holds the rest)."""
    from rotelab.biomed.figures import plot_all
    from rotelab.core.io import read_json
    from rotelab.core.runs import read_parquet

    items = task.items()

    def step_table(name: str, fn):
        def go():
            run.write_parquet(f"{name}.parquet", fn())
        run.step(name, go)
        return read_parquet(run.file(f"{name}.parquet"))

    greedy = step_table("greedy", lambda: _greedy(lms, items, cfg, progress))
    sampled_raw = step_table("sampled", lambda: _sampled(lms, items, cfg, progress))
    sampled = {w: [list(x) for x in sampled_raw[w]] for w in WHO}

    def lex_step():
        summary, per_pair = lexicalization(task, lms["base"], cfg)
        run.write_json("lexicalization.json", {"summary": summary, "per_pair": per_pair})
    run.step("lexicalization", lex_step)
    lex = read_json(run.file("lexicalization.json"))
    mia = step_table("membership", lambda: membership(task, items, lms, cfg, progress)) if cfg.attacks else {}
    rows = items_table(items, {w: list(greedy[w]) for w in WHO}, sampled, {k: v for k, v in lex["per_pair"].items() if v}, mia)
    run.write_parquet("items.parquet", rows)
    result = summarize(task, rows, lex["summary"], cfg)
    run.write_json("metrics.json", result)
    plot_all(run, rows, result)
    return headline(result)
