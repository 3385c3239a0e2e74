"""Three recommenders over one scorer: full target attention, recent-only, and VISTA.

All three score a candidate item c by *target attention*: c attends (softmax, multi-head) over a
memory M built from the user's history, giving o_c; then two heads read [o_c, e_c, o_c * e_c]:

- retrieval: s(u, c) = cos(W o_c, e_c) / tau  (sampled softmax in training; HR@10, NDCG@10);
- ranking: one logit per binary task (BCE; AUC).

Only the memory differs (cost per candidate in brackets):

- ``full``   M = every history item                           [O(N d)]
- ``recent`` M = the last ``recent`` items (256)               [O(256 d)]
- ``vista``  M = S summary tokens Z + the last ``recent`` items [O((S + 256) d)], where
  Z = Summarizer(history): S learned seed tokens attend to the history by quasi-linear attention
  under the target mask (:mod:`rotelab.recsys.qla`), O(N d^2) once per user, then cached.
  A reconstruction decoder (causal QLA conditioned on Z) predicts sampled history items, so Z
  must carry what the history holds (Chen et al. 2025, "generative sequential reconstruction").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rotelab.recsys.qla import history_state, qla_causal, qla_targets

KINDS = ("vista", "full", "recent")


@dataclass(frozen=True)
class ModelConfig:
    kind: str
    n_items: int
    n_tasks: int
    d: int = 32
    heads: int = 2
    n_seeds: int = 32  # S summary tokens ("a few hundred" in production)
    recent: int = 256
    tau: float = 0.05  # retrieval temperature (HSTU's sampled-softmax setting)


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    B, T, d = x.shape
    return x.view(B, T, h, d // h).transpose(1, 2)  # (B, h, T, dh)


def _merge(x: torch.Tensor) -> torch.Tensor:
    B, h, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, h * dh)


class TargetScorer(nn.Module):
    """Candidates attend over a memory (cosine logits x learned scale), then the two heads."""

    def __init__(self, d: int, heads: int, n_tasks: int, tau: float):
        super().__init__()
        self.h, self.tau = heads, tau
        self.q, self.kv, self.out = nn.Linear(d, d), nn.Linear(d, 2 * d), nn.Linear(d, d)
        # QK-norm: cosine attention logits times a learned scale, so that a candidate can attend
        # sharply to the few history items like it from the first steps (plain dot products of
        # small fresh embeddings give near-uniform attention that learns very slowly). The gain starts
        # at 4, not e^2.5 = 12: the planted signal is how *often* a candidate's topic occurs (nearly
        # every item occurs somewhere in a long history), and a softmax that sharp puts all weight on
        # any single match, so it is count-blind until it unlearns its sharpness (full attention:
        # HR@10 0.40 vs 0.79 after 4 epochs on the bench data; see bench/recsys_vista.py)
        self.log_scale = nn.Parameter(torch.tensor(float(np.log(4.0))))
        self.retr = nn.Linear(d, d)
        self.rank = nn.Sequential(nn.Linear(3 * d, 2 * d), nn.SiLU(), nn.Linear(2 * d, n_tasks))

    def forward(self, cand: torch.Tensor, mem: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cand (B, C, d), mem (B, M, d), mask (B, M) bool -> retrieval (B, C), ranking (B, C, T)."""
        k, v = self.kv(mem).chunk(2, dim=-1)
        q = F.normalize(_heads(self.q(cand), self.h), dim=-1) * self.log_scale.exp()
        k = F.normalize(_heads(k, self.h), dim=-1)
        o = F.scaled_dot_product_attention(q, k, _heads(v, self.h), attn_mask=mask[:, None, None, :], scale=1.0)
        o = self.out(_merge(o))  # (B, C, d)
        retrieval = F.cosine_similarity(self.retr(o), cand, dim=-1) / self.tau
        ranking = self.rank(torch.cat([o, cand, o * cand], dim=-1))
        return retrieval, ranking


class Summarizer(nn.Module):
    """Stage 1: S seeds attend to the history under the target mask (QLA) -> Z (B, S, d)."""

    def __init__(self, d: int, heads: int, n_seeds: int):
        super().__init__()
        self.h = heads
        self.seeds = nn.Parameter(torch.randn(n_seeds, d) * 0.1)
        self.kv_hist = nn.Linear(d, 2 * d)
        self.qkv_seed = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))

    def state(self, hist_e: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Additive state of a history chunk: hist_e (B, N, d), mask (B, N)."""
        k, v = self.kv_hist(hist_e).chunk(2, dim=-1)
        return history_state(_heads(k, self.h), _heads(v, self.h), mask)

    def summarize(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        B = state[0].shape[0]
        p = self.seeds[None].expand(B, -1, -1)
        q, k, v = (_heads(t, self.h) for t in self.qkv_seed(p).chunk(3, dim=-1))
        z = p + self.out(_merge(qla_targets(q, k, v, state)))
        return z + self.mlp(self.norm(z))


class ReconDecoder(nn.Module):
    """Causal QLA decoder conditioned on Z: predicts a user's sampled history items in order."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h = heads
        self.bos = nn.Parameter(torch.zeros(1, 1, d))
        self.kv_z, self.qkv, self.out = nn.Linear(d, 2 * d), nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, z: torch.Tensor, seq_e: torch.Tensor) -> torch.Tensor:
        """z (B, S, d), seq_e (B, m, d) -> predicted embeddings (B, m, d) of seq items 1..m."""
        kz, vz = self.kv_z(z).chunk(2, dim=-1)
        prefix = history_state(_heads(kz, self.h), _heads(vz, self.h))
        x = torch.cat([self.bos.expand(len(seq_e), -1, -1), seq_e[:, :-1]], dim=1)  # shift right
        q, k, v = (_heads(t, self.h) for t in self.qkv(x).chunk(3, dim=-1))
        return self.out(_merge(qla_causal(q, k, v, prefix)))


class Recommender(nn.Module):
    """Item embeddings + (VISTA only) summarizer and decoder + the shared target scorer."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.kind in KINDS, f"model kind {cfg.kind!r} not in {KINDS}"
        self.cfg = cfg
        self.items = nn.Embedding(cfg.n_items + 1, cfg.d, padding_idx=0)
        nn.init.normal_(self.items.weight, std=1.0)
        self.scorer = TargetScorer(cfg.d, cfg.heads, cfg.n_tasks, cfg.tau)
        if cfg.kind == "vista":
            self.summarizer = Summarizer(cfg.d, cfg.heads, cfg.n_seeds)
            self.decoder = ReconDecoder(cfg.d, cfg.heads)
            self.z_type = nn.Parameter(torch.zeros(cfg.d))

    def summarize(self, hist: torch.Tensor) -> torch.Tensor:
        """Z (B, S, d) from padded histories hist (B, N) (0 = padding)."""
        return self.summarizer.summarize(self.summarizer.state(self.items(hist), hist > 0))

    @torch.no_grad()
    def summarize_stream(self, chunks: Iterable[np.ndarray]) -> torch.Tensor:
        """Z (S, d) of one user's history read chunk by chunk: memory O(chunk d), not O(N d)."""
        state = None
        for ids in chunks:
            t = torch.as_tensor(np.asarray(ids, dtype=np.int64))[None]
            s = self.summarizer.state(self.items(t), t > 0)
            state = s if state is None else (state[0] + s[0], state[1] + s[1])
        return self.summarizer.summarize(state)[0]

    def memory(self, hist: torch.Tensor, z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mem (B, M, d), mask (B, M)) for padded, left-aligned-to-the-end histories (B, N)."""
        ids = hist if self.cfg.kind == "full" else hist[:, -self.cfg.recent :]
        mem, mask = self.items(ids), ids > 0
        if self.cfg.kind == "vista":
            z = self.summarize(hist) if z is None else z
            mem = torch.cat([z + self.z_type, mem], dim=1)
            mask = torch.cat([torch.ones(z.shape[:2], dtype=torch.bool), mask], dim=1)
        return mem, mask

    def forward(self, hist: torch.Tensor, cand: torch.Tensor, z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """hist (B, N), cand (B, C) item ids -> retrieval logits (B, C), ranking logits (B, C, T)."""
        mem, mask = self.memory(hist, z)
        return self.scorer(self.items(cand), mem, mask)

    def recon_loss(self, z: torch.Tensor, seq: torch.Tensor, negs: torch.Tensor) -> torch.Tensor:
        """Sampled-softmax NLL of history items seq (B, m) given Z, against shared negatives (K,)."""
        pred = F.normalize(self.decoder(z, self.items(seq)), dim=-1)  # (B, m, d)
        pos = (pred * F.normalize(self.items(seq), dim=-1)).sum(-1, keepdim=True)
        neg = pred @ F.normalize(self.items(negs), dim=-1).T  # (B, m, K)
        logits = torch.cat([pos, neg], dim=-1) / self.cfg.tau
        return F.cross_entropy(logits.flatten(0, 1), torch.zeros(logits.shape[0] * logits.shape[1], dtype=torch.long))
