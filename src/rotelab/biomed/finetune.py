"""Fine-tuning on the training pairs: full or LoRA (PEFT), loss on the answer only.

Each training question (every arm and direction of the task) is one sequence
``BOS prompt answer\\n``, labels -100 on the prompt. The schedule is the core's duplication
schedule: every pair is seen exactly ``epochs`` times in one shuffled pass, batches built from
length-sorted windows (:func:`rotelab.core.training.schedule` / ``batches``), linear warm-up and
cosine decay (``lr_at``), AdamW without weight decay, gradient norm clipped at 1. The core's
``train_on_schedule`` takes the loss on every token; the paper's question -> answer fine-tune
takes it on the answer, hence this loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from rotelab.biomed.task import Item, completion
from rotelab.errors import RotelabError


@dataclass(frozen=True)
class FinetuneConfig:
    """``rotelab biomed finetune``: full fine-tune, or LoRA adapters merged into the saved model."""

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 32
    warmup_steps: int = 20
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0

    def validate(self) -> None:
        for name in ("epochs", "batch_size", "lora_r", "lora_alpha"):
            if getattr(self, name) < 1:
                raise RotelabError(f"--{name.replace('_', '-')} must be >= 1; got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise RotelabError(f"--warmup-steps must be >= 0; got {self.warmup_steps}")
        if not self.lr > 0:
            raise RotelabError(f"--lr must be > 0; got {self.lr}")


def pair_sequences(lm, items: list[Item]) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of ``prompt + answer`` and labels (-100 on the prompt), answers tokenized on their own
    (as the model generates them after the prompt)."""
    prompts = lm.tokenize([it.prompt for it in items])
    answers = lm.tokenizer([completion(it.gold) for it in items], add_special_tokens=False)["input_ids"]
    seqs = [p + list(a) for p, a in zip(prompts, answers)]
    labels = [[-100] * len(p) + list(a) for p, a in zip(prompts, answers)]
    for it, s in zip(items, seqs):
        if len(s) > lm.max_length:
            raise RotelabError(f"{it.group} {it.key}: prompt and answer are {len(s)} tokens, beyond the model's context of {lm.max_length}")
    return seqs, labels


def with_lora(model, cfg: FinetuneConfig):
    """A PEFT LoRA model over every linear layer but the head (``all-linear``)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(cfg.seed)
    is_conv1d = model.config.model_type == "gpt2"  # GPT-2's Conv1D stores weights transposed
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules="all-linear", fan_in_fan_out=is_conv1d)
    return get_peft_model(model, lora)


def finetune_model(lm, items: list[Item], cfg: FinetuneConfig, *, progress: bool = True):
    """Train ``lm.model`` on ``items`` (in place; LoRA adapters merged at the end); returns
    (model, log)."""
    from rotelab.core.console import progress as bar_
    from rotelab.core.training import TrainSpec, batches, collate, lr_at, schedule

    if not items:
        raise RotelabError("the task has no training pairs")
    seqs, labels = pair_sequences(lm, items)
    model = with_lora(lm.model, cfg) if cfg.lora else lm.model
    spec = TrainSpec(lr=cfg.lr, batch_size=cfg.batch_size, warmup_steps=cfg.warmup_steps, seed=cfg.seed)
    plan = batches(schedule([cfg.epochs] * len(seqs), seed=cfg.seed), [len(s) for s in seqs], cfg.batch_size, seed=cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0, betas=(0.9, 0.95))
    torch.manual_seed(cfg.seed)
    model.train()
    log, t0, device = [], time.time(), lm.device
    with bar_(disable=not progress) as bar:
        task = bar.add_task("fine-tuning", total=len(plan))
        for step, idx in enumerate(plan):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, len(plan), spec)
            x, mask, _ = collate([seqs[i] for i in idx], lm.pad_id)
            y = collate([labels[i] for i in idx], -100)[0]  # (B, T): padding is -100 too
            loss = model(input_ids=x.to(device), attention_mask=mask.to(device), labels=y.to(device)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if step % 50 == 0 or step == len(plan) - 1:
                log.append({"step": step, "loss": float(loss.item())})
            bar.advance(task)
    model.eval()
    trainable = sum(p.numel() for p in params)
    if cfg.lora:
        model = model.merge_and_unload()
    return model, {"steps": len(plan), "n_sequences": len(seqs), "trainable_parameters": int(trainable), "seconds": round(time.time() - t0, 1),
                   "final_loss": log[-1]["loss"], "log": log}
