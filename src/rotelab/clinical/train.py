"""The EHR foundation model trained here: a small causal LM over code tokens, saved as a normal
Hugging Face folder (config, safetensors, word-level tokenizer) with ``clinical_vocab.json``.

GPT-2 style by default; ``arch="mamba2"`` builds a ``Mamba2ForCausalLM`` (the paper's EHRMamba2
architecture; on CPU transformers runs it with its slow reference kernels). Training is the
shared trainer (:func:`rotelab.core.training.train_on_schedule`): every train subject
``epochs`` times in one shuffled stream, so a canary with k identical copies is seen k x epochs times.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rotelab.clinical.config import TrainConfig
from rotelab.clinical.medsio import MedsData
from rotelab.clinical.tokens import BOS, EOS, PAD, TokenFormat, build_tokenizer

if TYPE_CHECKING:
    from rotelab.core.runs import RunFolder


def new_ehr_model(cfg: TrainConfig, vocab_size: int, ids: dict[str, int]):
    """A randomly initialised causal LM of ``cfg.arch`` over ``vocab_size`` tokens."""
    import torch
    import transformers as tf

    from rotelab.core.training import ModelSpec, new_model

    special = dict(bos_token_id=ids[BOS], eos_token_id=ids[EOS], pad_token_id=ids[PAD])
    if cfg.arch == "gpt2":
        model = new_model(ModelSpec(n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, n_positions=cfg.context, vocab_size=vocab_size), seed=cfg.seed)
        for k, v in special.items():
            setattr(model.config, k, v)
        return model
    torch.manual_seed(cfg.seed)
    head_dim = 16
    conf = tf.Mamba2Config(vocab_size=vocab_size, hidden_size=cfg.n_embd, num_hidden_layers=cfg.n_layer, state_size=16, expand=2, head_dim=head_dim,
                           num_heads=2 * cfg.n_embd // head_dim, n_groups=1, chunk_size=64, tie_word_embeddings=True, **special)
    return tf.Mamba2ForCausalLM(conf)


def sequences(fmt: TokenFormat, data: MedsData, context: int) -> tuple[list[list[int]], int]:
    """[BOS] record [EOS] ids of the train split, cut to ``context``; and how many were cut."""
    ids = fmt.ids
    out, cut = [], 0
    for s in data.subjects:
        if s.split != "train":
            continue
        x = [ids[BOS]] + fmt.to_ids(fmt.encode(s)) + [ids[EOS]]
        cut += len(x) > context
        out.append(x[:context])
    return out, cut


def train_ehr_model(run: "RunFolder", data: MedsData, cfg: TrainConfig, *, progress: bool = True) -> dict[str, Any]:
    """Fit the token format, train, save ``model/`` (with ``clinical_vocab.json``); returns the summary."""
    from rotelab.core.training import TrainSpec, save_model_dir, train_on_schedule

    fmt = TokenFormat.fit(data, value_bins=cfg.value_bins)
    seqs, cut = sequences(fmt, data, cfg.context)
    if cut:
        run.note("truncated_records", cut, say=f"{cut} of {len(seqs)} training records are longer than --context {cfg.context} and were cut")
    model = new_ehr_model(cfg, len(fmt.vocab), fmt.ids)
    spec = TrainSpec(lr=cfg.lr, batch_size=cfg.batch_size, warmup_steps=min(50, max(1, len(seqs) * cfg.epochs // cfg.batch_size // 10)), seed=cfg.seed)
    log = train_on_schedule(model, seqs, [cfg.epochs] * len(seqs), spec, pad_id=fmt.ids[PAD], progress=progress, label="training the EHR model")
    tokenizer = build_tokenizer(fmt.vocab, context=cfg.context)
    dest = run.file("model")
    save_model_dir(model, tokenizer, dest)
    fmt.save(dest)
    n_params = int(sum(p.numel() for p in model.parameters()))
    return {"model": str(dest), "arch": cfg.arch, "parameters": n_params, "vocab": len(fmt.vocab), "train_records": len(seqs),
            "tokens_per_epoch": int(sum(map(len, seqs))), "steps": log["steps"], "seconds": log["seconds"], "tokens_per_s": log["tokens_per_s"],
            "final_loss": float(np.mean([e["loss"] for e in log["log"][-3:]])), "truncated_records": cut}
