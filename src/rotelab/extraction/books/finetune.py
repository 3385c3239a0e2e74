"""The two fine-tunes of the books experiment: suppression (a full fine-tune on refusal text until
extraction of the memorized held-back excerpts halves) and its undoing (a PEFT LoRA on prefix ->
continuation pairs of *other* excerpts, loss on the continuation only).

Both draw seeded random batches with a constant learning rate (AdamW, no weight decay, gradient
norm clipped at 1); batches are padded with :func:`rotelab.core.training.collate`.
"""

from __future__ import annotations

import random
import time
from typing import Any, Callable

import torch

from rotelab.core.training import collate
from rotelab.errors import RotelabError
from rotelab.extraction import book as B
from rotelab.extraction.books.measure import excerpt_config


def optimizer_step(model, opt, seqs: list[list[int]], labels: list[list[int]], pad: int) -> float:
    """One AdamW step on right-padded ``seqs``; ``labels`` -100 where no loss is taken."""
    x, mask, _ = collate(seqs, pad)
    y = collate(labels, -100)[0]  # (B, T): padding is -100 too
    loss = model(input_ids=x, attention_mask=mask, labels=y).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    return float(loss.item())


def suppress(model, tok, texts: list[str], *, lr: float, batch_size: int, max_steps: int, check_every: int, target_ratio: float, seed: int, check: Callable[[], float]) -> dict[str, Any]:
    """Full fine-tune (AdamW, constant ``lr``) on ``texts`` until ``check() <= target_ratio x`` its
    starting value, or ``max_steps``; ``check`` (the held-back mean median Jaccard) runs every
    ``check_every`` steps."""
    L = model.config.n_positions
    ids = [x[:L] for x in tok(texts)["input_ids"]]
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    t0 = time.time()
    value = check()
    target = target_ratio * value
    log: list[dict[str, Any]] = [{"step": 0, "held_back_mean_median_jaccard": value}]
    step = 0
    while step < max_steps and value > target:
        model.train()
        for _ in range(check_every):
            pick = [ids[rng.randrange(len(ids))] for _ in range(batch_size)]
            loss = optimizer_step(model, opt, pick, pick, tok.pad_token_id)
            step += 1
        model.eval()
        value = check()
        log.append({"step": step, "loss": loss, "held_back_mean_median_jaccard": value})
    model.eval()
    return {"steps": step, "reached_target": bool(value <= target), "target": target, "final": value, "seconds": round(time.time() - t0, 1), "log": log,
            "n_texts": len(texts), "lr": lr, "batch_size": batch_size}


def continuation_pairs(tok, excerpts: list[dict], *, prefix: int, suffix: int) -> tuple[list[list[int]], list[list[int]]]:
    """BOS + prefix + continuation sequences (stride = suffix) with labels only on the continuation
    (the testbed's training format: its tokenizer's BOS, then the excerpt's tokens)."""
    seqs, labels = [], []
    cfg = excerpt_config(prefix, suffix)
    for e in excerpts:
        ids = tok(e["text"], add_special_tokens=False)["input_ids"]
        for _, p, t in B.windows(ids, cfg):
            seqs.append([tok.bos_token_id] + p + t)
            labels.append([-100] * (1 + len(p)) + t)
    return seqs, labels


def lora_undo(model, tok, others: list[dict], *, prefix: int, suffix: int, r: int, alpha: int, lr: float, steps: int, batch_size: int, probe_every: int, seed: int,
              probe: Callable[[Any], dict[str, float]] | None = None):
    """PEFT LoRA (attention c_attn/c_proj and MLP c_fc/c_proj, GPT-2 Conv1D) on prefix -> continuation pairs.

    ``probe(model) -> dict``, if given, is logged every ``probe_every`` steps and at the end (a
    trajectory; the step count is fixed in advance, never chosen from the probe). Returns the
    PEFT model and the log.
    """
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True)
    pm = get_peft_model(model, cfg)
    seqs, labels = continuation_pairs(tok, others, prefix=prefix, suffix=suffix)
    if not seqs:
        raise RotelabError("no prefix -> continuation pairs in the 'other' excerpts (too short)")
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    rng = random.Random(seed)
    pm.train()
    log, trajectory, t0 = [], [], time.time()
    for step in range(steps):
        if probe is not None and step % probe_every == 0:
            pm.eval()
            trajectory.append({"step": step} | probe(pm))
            pm.train()
        pick = [rng.randrange(len(seqs)) for _ in range(batch_size)]
        loss = optimizer_step(pm, opt, [seqs[i] for i in pick], [labels[i] for i in pick], tok.pad_token_id)
        if step % 25 == 0 or step == steps - 1:
            log.append({"step": step, "loss": loss})
    pm.eval()
    if probe is not None:
        trajectory.append({"step": steps} | probe(pm))
    n_train = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    return pm, {"steps": steps, "n_pairs": len(seqs), "r": r, "alpha": alpha, "lr": lr, "batch_size": batch_size,
                "trainable_parameters": n_train, "seconds": round(time.time() - t0, 1), "log": log, "trajectory": trajectory}
