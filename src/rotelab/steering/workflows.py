"""The steps of ``steer probe`` inside a run folder: prompt sets -> labels (diversity, exact,
source) -> activations -> probe -> causal check; and the held-out sets ``steer eval`` reads.

Run folder: ``probe.npz`` + ``probe.json`` (the probe), ``items.parquet`` (every prompt with its role
probe | eval, diversity D and labels), ``probe_summary.json`` (AUROC per block and position with
bootstrap CIs, label agreement, dose-response), ``figures/``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rotelab.core.data import Sample
from rotelab.core.io import read_json
from rotelab.core.runs import RunFolder, read_parquet
from rotelab.errors import RotelabError
from rotelab.steering import labels as L
from rotelab.steering.causal import dose_response
from rotelab.steering.probe import collect_activations, split_indices, train_probe

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel
    from rotelab.testbed.folder import Testbed


@dataclass(frozen=True)
class ProbeConfig:
    labels: str = "diversity"  # which labelling trains the probe: diversity | exact | source
    k: int = 8  # sampled continuations per prompt (diversity)
    div_tokens: int = 16
    temperature: float = 0.8
    tau_lo: float = 0.4  # D below: memorizing
    tau_hi: float = 0.6  # D above: generalizing
    prefix: int = 32
    suffix: int = 32
    eval_share: float = 0.5  # testbed: share of memorized prompts held out for steer eval
    max_per_group: int = 120  # testbed: prompts per generalization group used by the probe
    test_share: float = 0.3  # held-out share for the probe's AUROC
    C: float = 0.1
    displacements: tuple[float, ...] = (-2.0, -1.0, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0)
    batch_size: int = 64
    blocks: str | None = None

    def validate(self) -> None:
        if self.labels not in L.LABELLINGS:
            raise RotelabError(f"--labels must be one of {', '.join(L.LABELLINGS)}; got '{self.labels}'")
        if not 0 <= self.tau_lo <= self.tau_hi <= 1:
            raise RotelabError(f"need 0 <= --tau-lo <= --tau-hi <= 1; got {self.tau_lo}, {self.tau_hi}")
        if self.k < 2:
            raise RotelabError(f"--k must be >= 2 (pairs of samples); got {self.k}")
        for opt, v in (("--prefix-tokens", self.prefix), ("--suffix-tokens", self.suffix), ("div_tokens", self.div_tokens), ("--batch-size", self.batch_size), ("max_per_group", self.max_per_group)):
            if v < 1:
                raise RotelabError(f"{opt} must be >= 1; got {v}")
        if not self.temperature > 0 or not self.C > 0:
            raise RotelabError(f"temperature and C must be > 0; got {self.temperature}, {self.C}")
        if not 0 < self.eval_share < 1 or not 0 < self.test_share < 1:
            raise RotelabError(f"eval_share and test_share must be in (0, 1); got {self.eval_share}, {self.test_share}")
        if not all(np.isfinite(self.displacements)):
            raise RotelabError(f"displacements must be finite; got {self.displacements}")


@dataclass(frozen=True)
class PromptSet:
    """The probe's prompts, each with its role (``probe`` trains it, ``eval`` is held out for
    ``steer eval``) and the set it came from (mem, nonmember, paraphrase; user files: mem, gen)."""

    items: list[L.Item]
    roles: list[str]
    sets: list[str]

    @property
    def probe_items(self) -> list[L.Item]:
        return [it for it, r in zip(self.items, self.roles) if r == "probe"]


def assign_roles(sets: dict[str, list[L.Item]], cfg: ProbeConfig, seed: int) -> tuple[list[L.Item], list[str]]:
    """Testbed prompts split into ``probe`` (trains the probe) and ``eval`` (held out for steering)."""
    rng = np.random.default_rng(seed)
    items, roles = [], []
    for name, group in sets.items():
        perm = rng.permutation(len(group))
        n_probe = int(round(len(group) * (1 - cfg.eval_share))) if name == "mem" else min(cfg.max_per_group, len(group) // 2)
        for r, i in enumerate(perm):
            items.append(group[i])
            roles.append("probe" if r < n_probe else "eval")
    return items, roles


def prompt_set(lm: "HFLanguageModel", cfg: ProbeConfig, *, testbed: "Testbed | None" = None, mem: list[Sample] | None = None, gen: list[Sample] | None = None, seed: int = 0) -> PromptSet:
    """The probe's prompts from a testbed (split by role, seeded) or from the user's texts; refused
    in one line when the prompts cannot fit the context or lack one of the two kinds."""
    if len(lm.bos_ids) + cfg.prefix + cfg.suffix > lm.max_length:
        raise RotelabError(f"--prefix-tokens {cfg.prefix} + --suffix-tokens {cfg.suffix} (+ BOS) exceed the model's context of {lm.max_length} tokens")
    if testbed is not None:
        sets = L.testbed_items(lm, testbed, prefix=cfg.prefix, suffix=cfg.suffix)
        items, roles = assign_roles(sets, cfg, seed)
        set_of = {id(it): name for name, group in sets.items() for it in group}
        ps = PromptSet(items, roles, [set_of[id(it)] for it in items])
    else:
        items = L.user_items(lm, mem, gen, prefix=cfg.prefix, suffix=cfg.suffix)
        ps = PromptSet(items, ["probe"] * len(items), ["mem" if it.source else "gen" for it in items])
    P = ps.probe_items
    if not any(it.source for it in P) or all(it.source for it in P):
        raise RotelabError(f"the probe needs prompts of both kinds; got {sum(it.source for it in P)} memorized and {sum(1 - it.source for it in P)} generalizing")
    return ps


def load_items(lm: "HFLanguageModel", probe_dir: Path, testbed: "Testbed", *, role: str) -> dict[str, list[L.Item]]:
    """The testbed prompt sets restricted to the ids the probe run gave ``role``."""
    meta = read_parquet(Path(probe_dir) / "items.parquet")
    keep = {(g, i) for g, i, r in zip(meta["set"], meta["id"], meta["role"]) if r == role}
    cfg = read_json(Path(probe_dir) / "probe_summary.json")["config"]
    sets = L.testbed_items(lm, testbed, prefix=cfg["prefix"], suffix=cfg["suffix"])
    return {name: [it for it in group if (name, it.id) in keep] for name, group in sets.items()}


def run_probe(lm: "HFLanguageModel", run: RunFolder, cfg: ProbeConfig, prompts: PromptSet, *, seed: int = 0, progress: bool = False) -> dict:
    """Label the probe prompts, fit the per-block probe, check it causally; write everything into ``run``.

    Returns the headline figures (:func:`probe_result` of ``probe_summary.json``).
    """
    items, roles = prompts.items, prompts.roles
    P = prompts.probe_items
    src = np.array([it.source for it in P])
    d = L.diversity(lm, P, k=cfg.k, n_tokens=cfg.div_tokens, temperature=cfg.temperature, seed=seed, batch_size=cfg.batch_size, progress=progress)
    labs = {"source": src, "diversity": L.diversity_labels(d, tau_lo=cfg.tau_lo, tau_hi=cfg.tau_hi), "exact": L.verbatim(lm, P, batch_size=cfg.batch_size)}
    y_all = labs[cfg.labels]
    keep = np.flatnonzero(y_all >= 0)
    y = y_all[keep]
    if min(int(y.sum()), int(len(y) - y.sum())) < 4:
        raise RotelabError(
            f"labels '{cfg.labels}' give {int(y.sum())} memorizing and {int(len(y) - y.sum())} generalizing prompts (need >= 4 each); "
            f"try --labels source or other --tau-lo/--tau-hi (D ranges {d.min():.2f}..{d.max():.2f})"
        )
    acts = collect_activations(lm, [P[i].prompt for i in keep], blocks=cfg.blocks, batch_size=cfg.batch_size, progress=progress)
    tr, te = split_indices(y, test_share=cfg.test_share, seed=seed)
    probe, layer_rows = train_probe(acts, y, tr, te, C=cfg.C, seed=seed, blocks=cfg.blocks)
    probe.save(run.path)

    pi = np.flatnonzero(np.array(roles) == "probe")
    col = {k: np.full(len(items), -1) for k in labs}
    div = np.full(len(items), np.nan)
    for k in labs:
        col[k][pi] = labs[k]
    div[pi] = d
    run.write_parquet("items.parquet", {"id": [it.id for it in items], "set": prompts.sets, "group": [it.group for it in items], "role": roles,
                                        "source": [it.source for it in items], "diversity": div, **{f"label_{k}": v for k, v in col.items()}})

    held = [it for it, r in zip(items, roles) if r == "eval" and it.source == 1 and it.continuation]
    causal_items = held or [it for it in P if it.source == 1 and it.continuation]
    causal = dose_response(lm, probe, causal_items, displacements=cfg.displacements, batch_size=cfg.batch_size, progress=progress) if causal_items else {"rows": [], "causal": None, "causal_reason": "no memorized prompt with a known continuation"}
    causal["items"] = "held-out memorized prompts" if held else "the probe's own memorized prompts (no held-out ones)"
    best = next(r for r in layer_rows if r["layer"] == probe.layer and r["position"] == probe.position)
    summary = {
        "config": asdict(cfg), "seed": seed, "labels_used": cfg.labels, "site": probe.site, "position": probe.position,
        "auroc": best["auroc"], "auroc_ci": best["auroc_ci"], "n_train": int(len(tr)), "n_test": int(len(te)),
        "n_probe_prompts": len(P), "n_dropped_middle_band": int((y_all < 0).sum()),
        "label_counts": {k: {"mem": int((v == 1).sum()), "gen": int((v == 0).sum()), "dropped": int((v < 0).sum())} for k, v in labs.items()},
        "diversity_by_group": _by_group(P, d), "agreement": L.agreement(labs), "layers": layer_rows, "causal": causal,
        "direction_norm": float(np.linalg.norm(probe.mu_gen - probe.mu_mem)),
    }
    run.write_json("probe_summary.json", summary)
    _figures(run, summary)
    return probe_result(summary)


def probe_result(summary: dict) -> dict:
    """The headline figures of a probe run (what ``steer probe`` returns and prints)."""
    causal = summary["causal"]
    return {k: summary[k] for k in ("site", "position", "auroc", "auroc_ci", "labels_used", "label_counts")} | {"causal": causal.get("causal"), "causal_reason": causal.get("causal_reason")}


def _by_group(items: list[L.Item], d: np.ndarray) -> dict:
    out = {}
    for g in sorted({it.group for it in items}):
        x = d[[i for i, it in enumerate(items) if it.group == g]]
        out[g] = {"n": int(len(x)), "mean_D": float(x.mean()), "q10": float(np.quantile(x, 0.1)), "q90": float(np.quantile(x, 0.9))}
    return out


def _figures(run: RunFolder, s: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for pos, mk in (("last", "o-"), ("mean", "s--")):
        rows = [r for r in s["layers"] if r["position"] == pos]
        x = [r["layer"] for r in rows]
        y = [r["auroc"] for r in rows]
        lo = [r["auroc"] - r["auroc_ci"][0] for r in rows]
        hi = [r["auroc_ci"][1] - r["auroc"] for r in rows]
        ax.errorbar(x, y, yerr=[lo, hi], fmt=mk, capsize=3, label=f"{pos} token" if pos == "last" else "mean over prompt")
    ax.axhline(0.5, color="grey", lw=0.8)
    ax.set(xlabel="block (resid_post)", ylabel="held-out AUROC", title=f"probe per block (n_test={s['n_test']}, labels={s['labels_used']}, seed={s['seed']})")
    ax.title.set_fontsize(8)
    ax.legend(fontsize=7)
    run.figure("probe_auroc_by_layer", fig)
    rows = s["causal"]["rows"]
    if rows:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        x = [r["displacement"] for r in rows]
        ax.errorbar(x, [r["rate"] for r in rows], yerr=[[r["rate"] - r["ci"][0] for r in rows], [r["ci"][1] - r["rate"] for r in rows]], fmt="o-", capsize=3, label="verbatim rate (95% CP)")
        ax.plot(x, [r["mean_token_match"] for r in rows], "s--", label="mean token match")
        for sign in (-1, 1):
            rr = s["causal"].get("random_rows", [])
            ax.plot([sign * r["displacement"] for r in rr], [r["rate"] for r in rr], "x:", color="grey", label="random direction, same length" if sign < 0 else None)
        ax.set(xlabel="displacement along probe weight (x |mu_gen - mu_mem|; + = toward memorizing)", ylabel="rate", ylim=(-0.02, 1.02),
               title=f"dose-response, n={rows[0]['n']} {s['causal']['items']}")
        ax.title.set_fontsize(8)
        ax.xaxis.label.set_fontsize(7)
        ax.legend(fontsize=7)
        run.figure("dose_response", fig)


def eval_sets(lm: "HFLanguageModel", probe_dir: Path, *, testbed: "Testbed | None" = None, mem: list[Sample] | None = None, gen: list[Sample] | None = None) -> dict:
    """Held-out prompt sets: the testbed's prompts the probe run held out (role ``eval``), or the user's texts."""
    if testbed is not None:
        sets = load_items(lm, probe_dir, testbed, role="eval")
        return {"mem": sets["mem"], "ce_texts": [it.prompt + it.continuation for it in sets["nonmember"]], "paraphrases": sets["paraphrase"]}
    c = read_json(Path(probe_dir) / "probe_summary.json")["config"]
    items = L.user_items(lm, mem, gen, prefix=c["prefix"], suffix=c["suffix"])
    return {"mem": [it for it in items if it.source], "ce_texts": [it.prompt + (it.continuation or []) for it in items if not it.source], "paraphrases": []}


def testbed_inputs(tb: "Testbed") -> dict[str, Path]:
    """The testbed files the prompt sets come from (hashed into a run's identity)."""
    return {f"testbed {name}": tb.split(name) for name in L.TESTBED_SPLITS if tb.split(name) is not None}
