"""Training utilities every capability that trains a small LM shares: a GPT-2-style model from a
spec, a byte-level BPE tokenizer, the duplication-schedule trainer, collation, and saving a
model folder that loads like any user model.

The duplication schedule: every sample i appears exactly ``copies[i]`` times in one shuffled pass (its exposures), so
"seen c times" is a fact of the training run, recorded per sample. Texts are tokenized with a
tokenizer that prepends BOS, one sample per sequence, batches built from length-sorted
windows of the shuffled stream (little padding).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch

EOS = "<|endoftext|>"


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
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from rotelab.core.console import progress as bar_

    stream = schedule(copies, seed=spec.seed)
    plan = batches(stream, [len(x) for x in token_ids], spec.batch_size, seed=spec.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=spec.lr, weight_decay=spec.weight_decay, betas=(0.9, 0.95))
    model.train()
    device = next(model.parameters()).device
    log: list[dict] = []
    tokens, t0 = 0, time.time()
    cols = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"), TextColumn("loss {task.fields[loss]:.3f}"), TimeElapsedColumn(), TimeRemainingColumn()]
    with bar_(*cols, disable=not progress) as bar:
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


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 4096, min_frequency: int = 2):
    """Train a GPT-2-style byte-level BPE on ``texts``; returns a ``PreTrainedTokenizerFast``.

    One special token, ``<|endoftext|>``, serves as BOS, EOS and padding (as in GPT-2). It is
    prepended to every text (a post-processor), so training and scoring see the same positions
    and the first word of a text gets a prediction.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{EOS} $A", special_tokens=[(EOS, tok.token_to_id(EOS))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=EOS, unk_token=None
    )


def char_tokenizer(texts: Iterable[str]):
    """A character-level tokenizer over the characters of ``texts`` (``tokenizers`` WordLevel on
    single characters); returns a ``PreTrainedTokenizerFast``.

    As :func:`train_tokenizer`: ``<|endoftext|>`` is BOS, EOS and padding and is prepended to every
    text. A character outside ``texts`` maps to ``<unk>``. One token per character lets a micro
    model see the letters of a word (e.g. learn an abbreviation rule).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    unk = "<unk>"
    vocab = {EOS: 0, unk: 1}
    for c in sorted(set("".join(texts))):
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token=unk))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(single=f"{EOS} $A", special_tokens=[(EOS, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=EOS, eos_token=EOS, pad_token=EOS, unk_token=unk)


def save_model_dir(model, tokenizer, dest: Path | str) -> None:
    """save_pretrained (safetensors) + tokenizer into a temporary folder, then move it in place.

    Folder and files follow the user's umask (a shared testbed stays readable by colleagues;
    ``mkdtemp`` alone would leave the folder 0700).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}."))
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o777 & ~mask)
    for f in tmp.rglob("*"):
        os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~mask)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)

