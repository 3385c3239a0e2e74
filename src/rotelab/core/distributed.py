"""Audits bigger than one process: forward passes fanned out over Ray workers.

:class:`RayModel` is a :class:`~rotelab.core.models.LanguageModel` whose passes run on a pool of
Ray actors, each holding its own copy of the model (a local Hugging Face folder opened with the
same :class:`~rotelab.core.models.LoadOptions`, or the server backend). Every capability works
unchanged: the signal engine hands it all its batches at once (:meth:`forward_many`) and consumes
results as they arrive. Results travel back to the driver through Ray's object store (no shared
filesystem assumed); only the driver writes, under its run folder's lock, batch by batch (the
signal cache and checkpointed passes), so the resume rules are the ones of a local run.

A worker killed mid-batch is restarted by Ray (``max_restarts``) and its batch submitted again;
the batch's result is written once, when it arrives. ``address`` None starts a local Ray on this
machine; a cluster's address (``ray://host:10001`` or ``auto``) fans out over its nodes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from rotelab.core.models import LanguageModel
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.models import LoadOptions
    from rotelab.core.signals import TokenSignals

MAX_ATTEMPTS = 3  # submissions of one batch before the run gives up (a batch that kills every worker)


def _worker_class():
    import ray

    @ray.remote(max_restarts=MAX_ATTEMPTS, max_task_retries=0)
    class Worker:
        """One copy of the model on a Ray worker; answers batches of token-id lists."""

        def __init__(self, path: str, load: "LoadOptions", threads: int):
            import torch

            torch.set_num_threads(threads)
            self.lm = load.load(path)

        def pid(self) -> int:
            import os

            return os.getpid()

        def run(self, kind: str, batch: list[list[int]]) -> list:
            if kind == "signals":
                return [s.to_bytes() for s in self.lm.forward_signals(batch)]
            return self.lm.forward_logp(batch)

    return Worker


class RayModel(LanguageModel):
    """``local`` (the driver's copy: tokenizer, context, identity) plus ``workers`` Ray actors
    holding the model at ``path``. Outputs equal the local model's: the same code runs each batch."""

    backend = "ray"

    def __init__(self, local: LanguageModel, path: Path | str, load: "LoadOptions", *, workers: int, address: str | None = None, threads: int = 1):
        import ray

        if workers < 1:
            raise RotelabError(f"--workers must be >= 1; got {workers}")
        self.local = local
        self.name = f"{local.name} ({workers} Ray workers)"
        self.access = local.access
        self.max_length, self.long_text = local.max_length, local.long_text
        self.max_length_source = getattr(local, "max_length_source", None)
        self.source = getattr(local, "source", None)
        if not ray.is_initialized():
            try:
                local = {"num_cpus": max(workers, os.cpu_count() or 1)} if address is None else {}
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
            except Exception as e:  # ray raises many types; the user needs one line
                raise RotelabError(f"--ray-address {address or '(local)'}: cannot start or reach Ray ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
        Worker = _worker_class()
        self.workers = [Worker.remote(str(path), load, threads) for _ in range(workers)]
        self.resubmitted = 0

    # -- identity and tokenization: the driver's copy ---------------------------------------------
    @property
    def cache_namespace(self) -> str:
        return self.local.cache_namespace  # the same model: its cached signals are the same

    def describe(self) -> dict:
        return self.local.describe() | {"ray_workers": len(self.workers)}

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.local.tokenize(texts)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.local.detokenize(ids)

    def __getattr__(self, name: str):
        # generation, hidden states, weights: the driver's copy (the work Ray fans out is scoring)
        if name in ("greedy", "hidden_states", "model", "tokenizer", "device", "dtype", "pad_id", "n_embeddings", "fingerprint", "_right_pad", "_head_separable"):
            return getattr(self.local, name)
        raise AttributeError(name)

    # -- scoring, fanned out ----------------------------------------------------------------------
    def forward_signals(self, batch: list[list[int]]) -> list["TokenSignals"]:
        return next(self.forward_many("signals", [batch]))[1]

    def forward_logp(self, batch: list[list[int]]) -> list[np.ndarray]:
        return next(self.forward_many("logp", [batch]))[1]

    def forward_many(self, kind: str, batches: list[list[list[int]]]) -> Iterator[tuple[int, list]]:
        """Every batch on the next free worker (two in flight per worker); (index, outputs) as each
        finishes. A batch whose worker died is submitted again (to its restarted actor)."""
        import ray
        from ray.exceptions import RayActorError

        from rotelab.core.signals import TokenSignals

        todo = list(range(len(batches)))[::-1]
        attempts = [0] * len(batches)
        inflight: dict = {}  # ref -> (batch index, worker)
        free = [w for w in self.workers for _ in range(2)]
        while todo or inflight:
            while todo and free:
                j, w = todo.pop(), free.pop()
                attempts[j] += 1
                inflight[w.run.remote(kind, batches[j])] = (j, w)
            done, _ = ray.wait(list(inflight), num_returns=1)
            j, w = inflight.pop(done[0])
            free.append(w)
            try:
                out = ray.get(done[0])
            except RayActorError:
                if attempts[j] >= MAX_ATTEMPTS:
                    raise RotelabError(f"batch {j} killed its worker {attempts[j]} times; giving up (out of memory?)") from None
                self._await_restart(w)
                self.resubmitted += 1
                todo.append(j)
                continue
            yield j, [TokenSignals.from_bytes(b) for b in out] if kind == "signals" else out

    def _await_restart(self, worker) -> None:
        """Block until Ray has restarted a dead worker (it reloads the model), so that the batch
        is not sent to an actor that is still coming back."""
        import time

        import ray
        from ray.exceptions import ActorDiedError, RayActorError

        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                ray.get(worker.pid.remote(), timeout=600)
                return
            except ActorDiedError:  # out of restarts
                break
            except RayActorError:  # restarting: unavailable for now
                time.sleep(0.5)
        raise RotelabError("a Ray worker died and did not come back; see the Ray logs (out of memory?)")

    def worker_pids(self) -> list[int]:
        import ray

        return ray.get([w.pid.remote() for w in self.workers])

    def close(self) -> None:
        import ray

        for w in self.workers:
            ray.kill(w)
        self.workers = []
