"""Train small GPT-2-style models from scratch on a duplication schedule.

Every sample i appears exactly ``copies[i]`` times in one shuffled pass (its exposures), so
"seen c times" is a fact of the training run, recorded per sample. Texts are tokenized with the
testbed tokenizer (BOS prepended), one sample per sequence, batches built from length-sorted
windows of the shuffled stream (little padding).
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class ModelSpec:
    n_layer: int = 2
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 128  # >= 32-token prefix + 32-token suffix + BOS
    vocab_size: int = 4096


@dataclass(frozen=True)
class TrainSpec:
    lr: float = 2e-3
    batch_size: int = 32
    warmup_steps: int = 50
    weight_decay: float = 0.0  # memorization is the point; no regulariser against it
    seed: int = 0


def new_model(spec: ModelSpec, *, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=spec.vocab_size, n_positions=spec.n_positions, n_embd=spec.n_embd, n_layer=spec.n_layer,
        n_head=spec.n_head, bos_token_id=0, eos_token_id=0, pad_token_id=0,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, loss_type="ForCausalLM",
    )
    return GPT2LMHeadModel(cfg)


def schedule(copies: list[int], *, seed: int) -> list[int]:
    """Sample indices, sample i repeated copies[i] times, shuffled (one pass = the whole run)."""
    stream = [i for i, c in enumerate(copies) for _ in range(c)]
    random.Random(seed).shuffle(stream)
    return stream


def batches(stream: list[int], lengths: list[int], batch_size: int, *, seed: int, window: int = 50) -> list[list[int]]:
    """Batches of the stream: within windows of ``window`` batches, sort by length to cut padding,
    then shuffle the batch order inside the window (keeps the exposure timing roughly uniform)."""
    rng = random.Random(seed + 1)
    out = []
    span = batch_size * window
    for w in range(0, len(stream), span):
        chunk = sorted(stream[w : w + span], key=lambda i: lengths[i])
        bs = [chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size)]
        rng.shuffle(bs)
        out.extend(bs)
    return out


def collate(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    T = max(len(x) for x in ids)
    x = torch.full((len(ids), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), T), dtype=torch.long)
    for r, s in enumerate(ids):
        x[r, : len(s)] = torch.tensor(s)
        mask[r, : len(s)] = 1
    labels = x.masked_fill(mask == 0, -100)
    return x, mask, labels


def lr_at(step: int, total: int, spec: TrainSpec) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < spec.warmup_steps:
        return spec.lr * (step + 1) / spec.warmup_steps
    t = (step - spec.warmup_steps) / max(1, total - spec.warmup_steps)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def train_on_schedule(
    model,
    token_ids: list[list[int]],
    copies: list[int],
    spec: TrainSpec,
    *,
    pad_id: int = 0,
    progress: bool = True,
    label: str = "training",
    on_log: Callable[[dict], None] | None = None,
    log_every: int = 50,
) -> dict:
    """One pass over the duplication schedule with AdamW; returns a training log."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    stream = schedule(copies, seed=spec.seed)
    plan = batches(stream, [len(x) for x in token_ids], spec.batch_size, seed=spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, betas=(0.9, 0.95))
    model.train()
    device = next(model.parameters()).device
    log: list[dict] = []
    tokens, t0 = 0, time.time()
    cols = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"), TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*cols, disable=not progress, transient=True) as bar:
        task = bar.add_task(label, total=len(plan), loss=float("nan"))
        for step, idx in enumerate(plan):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, len(plan), spec)
            x, mask, labels = (t.to(device) for t in collate([token_ids[i] for i in idx], pad_id))
            loss = model(input_ids=x, attention_mask=mask, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tokens += int(mask.sum())
            if step % log_every == 0 or step == len(plan) - 1:
                entry = {"step": step, "loss": loss.item(), "lr": g["lr"], "tokens": tokens, "seconds": round(time.time() - t0, 1)}
                log.append(entry)
                if on_log:
                    on_log(entry)
            bar.update(task, advance=1, loss=loss.item())
    model.eval()
    secs = time.time() - t0
    return {"steps": len(plan), "tokens": tokens, "seconds": round(secs, 1), "tokens_per_s": round(tokens / max(secs, 1e-9)), "log": log, "spec": asdict(spec)}
