"""The memorization probe: per-block logistic regression on the residual stream (Zhang 2025, DMS).

    p_mem(h) = sigmoid(w . h + b)

fitted (L2, class-balanced, scikit-learn) on block outputs ``blocks.L.hook_resid_post`` of
memorization- vs generalization-eliciting prompts, for every block and position policy (``last``
prompt token, ``mean`` over the prompt); the block and policy with the best held-out AUROC win.
The scaler is folded into (w, b), so the probe reads raw activations at run time, per token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from rotelab.core import stats
from rotelab.core.batching import map_sorted
from rotelab.core.hooks import find_blocks, hooked, site_name
from rotelab.core.io import atomic_write_bytes, read_json, write_json
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.models import HFLanguageModel

POSITIONS = ("last", "mean")


@dataclass
class Probe:
    """A fitted probe at one block; ``mu_mem`` / ``mu_gen`` are the class means there (d,)."""

    layer: int
    position: str
    w: np.ndarray
    b: float
    mu_mem: np.ndarray
    mu_gen: np.ndarray
    blocks: str | None = None  # dotted path of the decoder blocks when not found automatically

    @property
    def site(self) -> str:
        return site_name(self.layer)

    def p_mem(self, h: np.ndarray) -> np.ndarray:
        """sigmoid(h @ w + b) for h (..., d)."""
        return 1.0 / (1.0 + np.exp(-(h @ self.w + self.b)))

    def direction(self, kind: str = "diffmean") -> np.ndarray:
        """Steering vector toward generalizing: mu_gen - mu_mem, or -w/|w| at the same length (RAPTOR-style);
        ``random``: a fixed random direction of the same length (the specificity control)."""
        diff = (self.mu_gen - self.mu_mem).astype(np.float32)
        if kind == "diffmean":
            return diff
        if kind == "probe":
            return (-self.w / np.linalg.norm(self.w) * np.linalg.norm(diff)).astype(np.float32)
        if kind == "random":
            r = np.random.default_rng(0).normal(size=diff.shape)
            return (r / np.linalg.norm(r) * np.linalg.norm(diff)).astype(np.float32)
        raise RotelabError(f"direction must be diffmean, probe or random; got '{kind}'")

    def save(self, folder: Path) -> None:
        """``probe.npz`` (numbers only, written atomically) and ``probe.json`` (site, position)."""
        import io

        folder = Path(folder)
        buf = io.BytesIO()
        np.savez(buf, w=self.w, b=np.array(self.b), mu_mem=self.mu_mem, mu_gen=self.mu_gen)
        atomic_write_bytes(folder / "probe.npz", buf.getvalue())
        write_json(folder / "probe.json", {"layer": self.layer, "site": self.site, "position": self.position, "blocks": self.blocks, "d_model": int(self.w.shape[0])})

    @classmethod
    def load(cls, folder: Path) -> "Probe":
        """Read a probe written by :meth:`save`; arrays only (no pickles), every field checked in one line."""
        folder = Path(folder)
        if not (folder / "probe.npz").exists():
            raise RotelabError(f"{folder}: no probe.npz (run 'rotelab steer probe --out {folder}' first)")
        meta = read_json(folder / "probe.json")
        for key in ("layer", "position"):
            if key not in meta:
                raise RotelabError(f"{folder / 'probe.json'}: missing field '{key}'")
        try:
            with np.load(folder / "probe.npz", allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k], dtype=np.float32 if k != "b" else np.float64) for k in ("w", "b", "mu_mem", "mu_gen")}
        except (KeyError, ValueError, OSError) as e:
            raise RotelabError(f"{folder / 'probe.npz'}: not a probe written by rotelab ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
        d = arrays["w"].shape
        if len(d) != 1 or arrays["mu_mem"].shape != d or arrays["mu_gen"].shape != d or arrays["b"].size != 1:
            raise RotelabError(f"{folder / 'probe.npz'}: arrays w, mu_mem, mu_gen must share one shape (d,) and b be a number")
        return cls(int(meta["layer"]), str(meta["position"]), arrays["w"], float(arrays["b"].reshape(-1)[0]), arrays["mu_mem"], arrays["mu_gen"], meta.get("blocks"))

    def check_model(self, lm: "HFLanguageModel") -> None:
        """Refuse, in one line, a model whose residual stream the probe cannot read."""
        n_blocks = len(find_blocks(lm.model, self.blocks))
        if self.layer >= n_blocks:
            raise RotelabError(f"the probe reads block {self.layer}; the model has {n_blocks} blocks")
        width = int(getattr(lm.model.config, "hidden_size", None) or lm.model.get_input_embeddings().weight.shape[1])
        if width != self.w.shape[0]:
            raise RotelabError(f"the probe was fitted on {self.w.shape[0]}-dimensional activations; the model's are {width}-dimensional (another model?)")


def collect_activations(lm: "HFLanguageModel", prompts: list[list[int]], *, blocks: str | None = None, batch_size: int = 32, progress: bool = False) -> dict[str, np.ndarray]:
    """Block outputs per prompt: ``{"last": (L, N, d), "mean": (L, N, d)}`` (mean over the prompt's tokens),
    read by hooks on every block in length-sorted batches."""
    n_layers = len(find_blocks(lm.model, blocks))
    grab: dict[int, torch.Tensor] = {}

    def reader(layer):
        def edit(h, cols, valid, state):
            grab[layer] = h.detach().float()
            return None

        return edit

    @torch.inference_mode()
    def batch_acts(batch: list[list[int]]) -> list[tuple[np.ndarray, np.ndarray]]:
        ids, mask = lm._right_pad(batch)  # (B, T)
        lm.model(input_ids=ids, attention_mask=mask)
        H = torch.stack([grab[l] for l in range(n_layers)])  # (L, B, T, d)
        last = H[:, torch.arange(len(batch)), mask.sum(1) - 1].cpu().numpy()  # (L, B, d)
        m = mask[None, :, :, None].float()
        mean = ((H * m).sum(2) / m.sum(2)).cpu().numpy()  # (L, B, d)
        return [(last[:, r], mean[:, r]) for r in range(len(batch))]

    with hooked(lm.model, {l: reader(l) for l in range(n_layers)}, blocks=blocks):
        rows = map_sorted(batch_acts, prompts, batch_size=batch_size, progress=progress, label="activations")
    return {"last": np.stack([r[0] for r in rows], 1), "mean": np.stack([r[1] for r in rows], 1)}


def _fit(X: np.ndarray, y: np.ndarray, C: float, seed: int) -> tuple[np.ndarray, float]:
    """L2 logistic regression on standardised X, folded back to raw activations: (w, b)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(X)
    clf = LogisticRegression(C=C, class_weight="balanced", max_iter=5000, random_state=seed).fit(sc.transform(X), y)
    w = clf.coef_[0] / sc.scale_
    b = float(clf.intercept_[0] - (w * sc.mean_).sum())
    return w.astype(np.float32), b


def train_probe(acts: dict[str, np.ndarray], y: np.ndarray, train: np.ndarray, test: np.ndarray, *, C: float = 0.1, seed: int = 0, n_boot: int = 500, blocks: str | None = None) -> tuple[Probe, list[dict]]:
    """Fit a probe per (block, position) on ``train``; pick the best held-out AUROC on ``test``.

    Returns the chosen :class:`Probe` (class means from ``train``) and one row per (block, position)
    with the held-out AUROC and its bootstrap 95% CI.
    """
    y = np.asarray(y).astype(int)
    for name, idx in (("train", train), ("test", test)):
        if len(set(y[idx].tolist())) < 2:
            raise RotelabError(f"the probe's {name} split holds one class only ({len(idx)} prompts); give more prompts of both kinds or change the labels")
    rows, best = [], None
    for pos in POSITIONS:
        L = acts[pos].shape[0]
        for layer in range(L):
            X = acts[pos][layer]
            w, b = _fit(X[train], y[train], C, seed)
            s = X[test] @ w + b
            auc = stats.roc_auc(s, y[test])
            ci = stats.auc_bootstrap_ci(s, y[test], n_boot=n_boot, seed=seed)
            train_auc = stats.roc_auc(X[train] @ w + b, y[train])
            rows.append({"layer": layer, "site": site_name(layer), "position": pos, "auroc": auc, "auroc_ci": list(ci), "train_auroc": train_auc, "n_test": int(len(test)), "n_test_mem": int(y[test].sum())})
            if best is None or auc > best[0] + 1e-12:
                best = (auc, pos, layer, w, b)
    _, pos, layer, w, b = best
    X = acts[pos][layer][train]
    probe = Probe(layer, pos, w, b, X[y[train] == 1].mean(0).astype(np.float32), X[y[train] == 0].mean(0).astype(np.float32), blocks)
    return probe, rows


def split_indices(y: np.ndarray, *, test_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / test indices."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_share, random_state=seed, stratify=y)
    return np.sort(tr), np.sort(te)

