"""What the attacks see: the target, the texts, their cached signals, and the extra passes some
attacks need (lowercased texts, a reference model, neighbours, a non-member prefix, gradients)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from rotelab.core.access import Access
from rotelab.core.signals import TokenSignals, compute_signals
from rotelab.errors import RotelabError
from rotelab.membership.perturb import Neighbours, build_neighbours, logp_of_id_lists, make_variants

if TYPE_CHECKING:
    from rotelab.core.cache import SignalCache
    from rotelab.core.models import LanguageModel


@dataclass(frozen=True)
class MIAConfig:
    k: float = 0.2  # Min-K% / Min-K%++ share of lowest tokens
    n_neighbours: int = 16  # Neighbourhood: K variants
    swap_rate: float = 0.1  # p
    rank: int = 1  # j
    recall_shots: int = 4  # non-member passages in the ReCaLL prefix
    batch_size: int = 32
    seed: int = 0

    def validate(self) -> None:
        if not 0 < self.k <= 1:
            raise RotelabError(f"--k must be in (0, 1]; got {self.k}")
        if not 0 < self.swap_rate <= 1:
            raise RotelabError(f"--swap-rate must be in (0, 1]; got {self.swap_rate}")
        if self.rank < 1 or self.n_neighbours < 1 or self.recall_shots < 1:
            raise RotelabError("--rank, --neighbours and --recall-shots must be >= 1")


@dataclass
class AttackContext:
    lm: "LanguageModel"
    texts: list[str]
    signals: list[TokenSignals]
    config: MIAConfig = field(default_factory=MIAConfig)
    reference: "LanguageModel | None" = None
    prefix_texts: list[str] | None = None  # ReCaLL non-member pool, disjoint from texts
    embedding_from: Path | None = None
    cache: "SignalCache | None" = None
    progress: bool = False
    _neighbours: Neighbours | None = None

    def signals_of(self, texts: Sequence[str], label: str) -> list[TokenSignals]:
        return compute_signals(self.lm, list(texts), batch_size=self.config.batch_size, cache=self.cache, progress=self.progress)

    def reference_signals(self) -> list[TokenSignals]:
        if self.reference is None:
            raise RotelabError("attack 'reference' needs --reference (a second model with the same tokenizer)")
        same = self.reference.tokenize(self.texts) == self.lm.tokenize(self.texts)
        if not same:
            raise RotelabError("--reference: its tokenizer splits the texts differently from the target model's; a reference model must share the tokenizer")
        return compute_signals(self.reference, self.texts, batch_size=self.config.batch_size, cache=self.cache, progress=self.progress)

    def neighbours(self) -> Neighbours:
        if self._neighbours is None:
            self._neighbours = build_neighbours(self.lm, max_rank=max(8, self.config.rank), embedding_from=self.embedding_from)
        return self._neighbours

    def neighbour_nlls(self) -> np.ndarray:
        """(N, K) NLL of each text's K embedding-neighbour variants."""
        c = self.config
        nb = self.neighbours()
        rng = np.random.default_rng(c.seed)
        seqs: list[list[int]] = []
        for s in self.signals:
            seqs += make_variants(s.token_ids, nb, k=c.n_neighbours, p=c.swap_rate, j=c.rank, rng=rng)[0]
        lp = logp_of_id_lists(self.lm, seqs, batch_size=c.batch_size, progress=self.progress, label="neighbours")
        return np.array([-x.mean() for x in lp], dtype=np.float64).reshape(len(self.signals), c.n_neighbours)

    def prefixed_ll(self) -> tuple[np.ndarray, np.ndarray]:
        """(LL(x | P), LL(x)) per text, mean log-lik over the same tokens 2..n of x (ReCaLL).

        P (the first ``recall_shots`` pool passages) keeps at least a quarter of the context: a
        longer text is cut to the first n = context - |P| tokens for both figures.
        """
        if not self.prefix_texts:
            raise RotelabError("attack 'recall' needs --prefix-pool (known non-members, disjoint from both sets)")
        probe = self.lm.tokenize(["a", "b"])
        bos = [t for t, u in zip(probe[0], probe[1]) if t == u]  # ids a tokenizer puts before every text
        prefix = [t for ids in self.lm.tokenize([" " + t for t in self.prefix_texts[: self.config.recall_shots]]) for t in ids[len(bos):]]
        L = self.lm.max_length
        seqs, keep, plain = [], [], []
        for s in self.signals:
            x = s.token_ids.tolist()
            room = min(len(prefix), max(L - len(x), L // 4))
            x = x[: L - room]
            head = x[: len(bos)]
            seqs.append(head + prefix[len(prefix) - room :] + x[len(bos) :])
            keep.append(len(x) - 1)
            plain.append(float(s.logp[: len(x) - 1].mean()))
        lp = logp_of_id_lists(self.lm, seqs, batch_size=self.config.batch_size, progress=self.progress, label="recall")
        return np.array([float(x[-n:].mean()) for x, n in zip(lp, keep)]), np.array(plain)

    def grad_norms(self) -> np.ndarray:
        """Mean over parameter tensors of ||grad_theta NLL(x)||_2, one text at a time."""
        self.lm.require(Access.WEIGHTS, method="attack 'gradnorm'")
        model = self.lm.model
        params = [p for p in model.parameters() if p.requires_grad]
        out = np.empty(len(self.signals))
        for i, s in enumerate(self.signals):
            ids = torch.as_tensor(s.token_ids[: self.lm.max_length], device=self.lm.device)[None]
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                loss = model(input_ids=ids, labels=ids).loss
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            out[i] = float(np.mean([g.norm(2).item() for g in grads if g is not None]))
        return out
