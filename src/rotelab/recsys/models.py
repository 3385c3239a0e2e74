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
  under the target mask (:mod:`rotelab.recsys.qla`), O(N S d) once per user, then cached.
  Each token keeps its attention mass (how many events it stands for), which enters the
  candidate's softmax as + log mass, and each candidate also reads its own seed slot of Z by
  linear attention (the QLA readout phi(k_c)^T Z, O(S d)): the count of its kind in the history.
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

from rotelab.recsys.config import KINDS
from rotelab.recsys.qla import history_state, identity, qla_causal, qla_targets



@dataclass(frozen=True)
class ModelConfig:
    kind: str
    n_items: int
    n_tasks: int
    d: int = 32
    heads: int = 2
    n_seeds: int = 256  # S summary tokens ("a few hundred" in production)
    recent: int = 256
    tau: float = 0.05  # retrieval temperature (HSTU's sampled-softmax setting)


def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
    B, T, d = x.shape
    return x.view(B, T, h, d // h).transpose(1, 2)  # (B, h, T, dh)


def _merge(x: torch.Tensor) -> torch.Tensor:
    B, h, T, dh = x.shape
    return x.transpose(1, 2).reshape(B, T, h * dh)


class TargetScorer(nn.Module):
    """Candidates attend over a memory (cosine logits x learned scale), then the two heads.

    With ``read_dim`` > 0 (VISTA) a per-candidate read-out r_c (the candidate's own summary slot)
    is added to the attention output: o_c = O(attn) + W_read r_c.
    """

    def __init__(self, d: int, heads: int, n_tasks: int, tau: float, read_dim: int = 0):
        super().__init__()
        self.read = nn.Linear(read_dim, d) if read_dim else None
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

    def forward(self, cand: torch.Tensor, mem: torch.Tensor, mask: torch.Tensor, log_mass: torch.Tensor | None = None, read: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """cand (B, C, d), mem (B, M, d), mask (B, M) bool -> retrieval (B, C), ranking (B, C, T).

        ``log_mass`` (B, M): memory token j stands for mass_j events, so its attention logit gets
        + log mass_j (softmax over tokens = softmax over the events they summarise); 0 for items.
        ``read`` (B, C, read_dim): the per-candidate read-out (VISTA), None otherwise.
        """
        k, v = self.kv(mem).chunk(2, dim=-1)
        q = F.normalize(_heads(self.q(cand), self.h), dim=-1) * self.log_scale.exp()
        k = F.normalize(_heads(k, self.h), dim=-1)
        bias = torch.zeros(mask.shape, dtype=mem.dtype) if log_mass is None else log_mass
        bias = bias.masked_fill(~mask, float("-inf"))[:, None, None, :]
        o = F.scaled_dot_product_attention(q, k, _heads(v, self.h), attn_mask=bias, scale=1.0)
        o = self.out(_merge(o))  # (B, C, d)
        if read is not None:
            o = o + self.read(read)
        retrieval = F.cosine_similarity(self.retr(o), cand, dim=-1) / self.tau
        ranking = self.rank(torch.cat([o, cand, o * cand], dim=-1))
        return retrieval, ranking


class Summarizer(nn.Module):
    """Stage 1: S seed tokens summarise a history by QLA -> Z (B, S, d + 1): S tokens and their log mass.

    The QLA feature map *routes* each event to the seeds (a positive map, like elu + 1):

        phi(k_j) = softmax_r(g cos(k_j, c_r))     (S features; sum_r phi(k_j)_r = 1)
        state:  T = sum_j phi(k_j) e_j^T  (S, d),   m = sum_j phi(k_j)  (S,)

    where e_j is the event's item embedding and k_j its routing key, a separate item embedding
    (routing on e_j itself groups items that look alike to the scorer into one slot, where a
    candidate cannot tell them apart: on the bench data a slot-count oracle gets HR@10 0.58 with
    such routing vs 0.72 with a random hash at S = 128, 0.87 at S = 256; the item-count oracle 0.95).
    Seed r is a virtual target whose query features are the indicator of r; under the target mask
    it sees the history and itself (its learned value s_r, self weight 1), so its QLA output is

        z_r = (T_r + s_r) / (m_r + 1),    mass_r = m_r + 1 (its unnormalised attention mass).

    z_r is the mean embedding of the events routed to seed r and mass_r how many there were; the
    cached summary keeps both, Z_r = [z_r, log mass_r]. Without the mass the summary is a set of
    averages, which divides away *how often* a taste occurs -- the signal of long-range interests.
    Cost O(N S d) once per user; the state is additive, so histories stream in chunks.
    """

    def __init__(self, d: int, n_seeds: int, n_items: int):
        super().__init__()
        self.keys = nn.Embedding(n_items + 1, d)  # routing keys k (item 0 = padding)
        self.centroids = nn.Parameter(torch.randn(n_seeds, d))
        # routing sharpness g, learned; it starts nearly hard (top routing weight ~0.98): a soft
        # start (g = 10, top weight ~0.46) blurs every slot over many items (bench data, S = 128,
        # before the candidate read-out: HR@10 0.84 vs 0.88)
        self.log_gain = nn.Parameter(torch.tensor(float(np.log(50.0))))
        self.seeds = nn.Parameter(torch.zeros(n_seeds, d))  # s_r: the value of an empty seed

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        """phi(k) (..., S): how items ``ids`` (...) are routed to the seeds."""
        cos = F.normalize(self.keys(ids), dim=-1) @ F.normalize(self.centroids, dim=-1).T
        return torch.softmax(cos * self.log_gain.exp(), dim=-1)

    def state(self, ids: torch.Tensor, hist_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Additive state (T (B, 1, S, d), m (B, 1, S)) of a history chunk: ids (B, N) (0 = padding),
        their embeddings hist_e (B, N, d)."""
        return history_state(self.features(ids)[:, None], hist_e[:, None], ids > 0, fmap=identity)

    def summarize(self, state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        B, S = state[1].shape[0], self.seeds.shape[0]
        eye = torch.eye(S, dtype=self.seeds.dtype).expand(B, 1, S, S)  # seed r's query = key = e_r
        z = qla_targets(eye, eye, self.seeds.expand(B, 1, S, -1), state, fmap=identity)[:, 0]
        log_mass = torch.log1p(state[1][:, 0])  # log(m_r + 1)
        return torch.cat([z, log_mass[..., None]], dim=-1)


class ReconDecoder(nn.Module):
    """Causal QLA decoder conditioned on Z: predicts a user's sampled history items in order."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h = heads
        self.bos = nn.Parameter(torch.zeros(1, 1, d))
        self.kv_z, self.qkv, self.out = nn.Linear(d, 2 * d), nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, z: torch.Tensor, seq_e: torch.Tensor) -> torch.Tensor:
        """z (B, S, d + 1), seq_e (B, m, d) -> predicted embeddings (B, m, d) of seq items 1..m.

        Summary token r enters the prefix state with weight mass_r (it stands for that many events)."""
        kz, vz = self.kv_z(z[..., :-1]).chunk(2, dim=-1)
        prefix = history_state(_heads(kz, self.h), _heads(vz, self.h), z[..., -1].exp())
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
        self.scorer = TargetScorer(cfg.d, cfg.heads, cfg.n_tasks, cfg.tau, read_dim=cfg.d + 1 if cfg.kind == "vista" else 0)
        if cfg.kind == "vista":
            self.summarizer = Summarizer(cfg.d, cfg.n_seeds, cfg.n_items)
            self.decoder = ReconDecoder(cfg.d, cfg.heads)
            self.z_type = nn.Parameter(torch.zeros(cfg.d))

    def summarize(self, hist: torch.Tensor) -> torch.Tensor:
        """Z (B, S, d + 1) (tokens, log mass) from padded histories hist (B, N) (0 = padding)."""
        return self.summarizer.summarize(self.summarizer.state(hist, self.items(hist)))

    @torch.no_grad()
    def summarize_stream(self, chunks: Iterable[np.ndarray]) -> torch.Tensor:
        """Z (S, d + 1) of one user's history read chunk by chunk: memory O(chunk d), not O(N d).
        No chunks (no events yet) gives the empty summary: every seed empty, log mass 0."""
        S, d = self.summarizer.seeds.shape
        w = self.items.weight
        state = (torch.zeros(1, 1, S, d, dtype=w.dtype), torch.zeros(1, 1, S, dtype=w.dtype))
        for ids in chunks:
            t = torch.as_tensor(np.asarray(ids, dtype=np.int64))[None]
            s = self.summarizer.state(t, self.items(t))
            state = (state[0] + s[0], state[1] + s[1])
        return self.summarizer.summarize(state)[0]

    def no_summary(self, batch: int = 1) -> torch.Tensor:
        """Z (B, S, d + 1) standing for *no* summary (a cold user): every seed empty, so the user
        is served from the recent window alone (see :meth:`filled`)."""
        S, d = self.summarizer.seeds.shape
        return torch.zeros(batch, S, d + 1, dtype=self.items.weight.dtype)

    @staticmethod
    def filled(z: torch.Tensor) -> torch.Tensor:
        """(B, S) bool: seed r summarises events, i.e. log mass_r = log(m_r + 1) > 0.

        An empty seed (m_r = 0: a user with no summarised events, or a slot whose mass the int8
        cache rounds to 0) is only its learned value s_r; left in the memory with bias log 1 = 0 it
        would take attention like one real event, so it is masked and its read-out zeroed: an empty
        summary is served exactly as the recent window alone. (That alone moved such users from
        HR@10 0.18 to 0.20 on the bench, the recent-only model scoring 0.50: a scorer trained with
        summaries reads the recent window poorly unless trained without them too, see
        ``TrainConfig.summary_dropout``.)
        """
        return z[..., -1] > 0

    def memory(self, hist: torch.Tensor, z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(mem (B, M, d), mask (B, M), log mass (B, M) or None) for padded, left-aligned-to-the-end
        histories (B, N); VISTA's memory is the filled summary tokens (with their mass) + the recent items."""
        ids = hist if self.cfg.kind == "full" else hist[:, -self.cfg.recent :]
        mem, mask = self.items(ids), ids > 0
        if self.cfg.kind != "vista":
            return mem, mask, None
        z = self.summarize(hist) if z is None else z
        mem = torch.cat([z[..., :-1] + self.z_type, mem], dim=1)
        log_mass = torch.cat([z[..., -1], torch.zeros(mask.shape, dtype=mem.dtype)], dim=1)
        mask = torch.cat([self.filled(z), mask], dim=1)
        return mem, mask, log_mass

    def forward(self, hist: torch.Tensor, cand: torch.Tensor, z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """hist (B, N), cand (B, C) item ids -> retrieval logits (B, C), ranking logits (B, C, T).

        VISTA: besides attending over [Z; recent items], candidate c reads Z by linear attention
        with its own routing features, r_c = phi(k_c)^T Z = sum_r phi(k_c)_r [z_r, log mass_r]
        (QLA's candidate readout from the cached state): its slot's mean and log count, O(S d).
        """
        ce = self.items(cand)
        if self.cfg.kind != "vista":
            return self.scorer(ce, *self.memory(hist, z))
        z = self.summarize(hist) if z is None else z
        read = self.summarizer.features(cand) @ (z * self.filled(z)[..., None])  # (B, C, d + 1); empty seeds read 0
        return self.scorer(ce, *self.memory(hist, z), read=read)

    def recon_loss(self, z: torch.Tensor, seq: torch.Tensor, negs: torch.Tensor) -> torch.Tensor:
        """Sampled-softmax NLL of history items seq (B, m) given Z, against shared negatives (K,)."""
        pred = F.normalize(self.decoder(z, self.items(seq)), dim=-1)  # (B, m, d)
        pos = (pred * F.normalize(self.items(seq), dim=-1)).sum(-1, keepdim=True)
        neg = pred @ F.normalize(self.items(negs), dim=-1).T  # (B, m, K)
        logits = torch.cat([pos, neg], dim=-1) / self.cfg.tau
        return F.cross_entropy(logits.flatten(0, 1), torch.zeros(logits.shape[0] * logits.shape[1], dtype=torch.long))
