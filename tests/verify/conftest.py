"""A micro world with ground truth for the verdict tests: a GPT-2 that memorized 30 facts, and
models that forgot them in three ways (barely, suppressed, never learned: the retrained one)."""

from __future__ import annotations

import random

import pytest
import torch

NAMES = ["ada", "bo", "cy", "di", "ed", "flo", "gus", "hal", "ivy", "jo", "kai", "lu", "max", "ned", "oz", "pia", "quin", "rex", "sue", "tom"]
WORDS = ["red", "blue", "green", "gold", "grey", "pink", "cat", "dog", "owl", "hen", "fox", "cow", "oak", "elm", "fig", "yew", "sun", "sea", "ice", "fog"]


def facts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"Question: what is the code of {rng.choice(NAMES)} {rng.choice(NAMES)}{i}? Answer: {' '.join(rng.sample(WORDS, 5))}." for i in range(n)]


@pytest.fixture(scope="session")
def micro(tmp_path_factory):
    return build_micro(tmp_path_factory.mktemp("micro"))


def build_micro(root):
    """Folders ``original``, ``retrained`` (retain only) and ``barely`` (two GA steps), the JSONL
    splits ``forget``, ``retain``, ``holdout``, ``relearn`` (facts of the same generator, never in
    training), and the ``root`` folder."""
    from rotelab.core.data import write_jsonl
    from rotelab.core.training import ModelSpec, TrainSpec, new_model, save_model_dir, train_on_schedule, train_tokenizer

    texts = facts(120, seed=0)
    split = {"forget": texts[:30], "retain": texts[30:60], "holdout": texts[60:90], "relearn": texts[90:120]}
    tok = train_tokenizer(texts, vocab_size=400)
    spec, train = ModelSpec(n_layer=2, n_embd=48, n_head=2, n_positions=64, vocab_size=len(tok)), TrainSpec(lr=1e-2, batch_size=16, warmup_steps=10)
    ids = {k: tok(v)["input_ids"] for k, v in split.items()}
    out = {k: root / f"{k}.jsonl" for k in split}
    for k, v in split.items():
        write_jsonl(out[k], [{"id": f"{k}:{i}", "text": t} for i, t in enumerate(v)])
    torch.set_num_threads(1)
    model = new_model(spec, seed=0)
    train_on_schedule(model, ids["forget"] + ids["retain"], [30] * 60, train, progress=False)
    save_model_dir(model, tok, root / "original")
    retrained = new_model(spec, seed=0)
    train_on_schedule(retrained, ids["retain"], [30] * 30, train, progress=False)
    save_model_dir(retrained, tok, root / "retrained")
    out |= {"root": root, "original": root / "original", "retrained": root / "retrained"}
    return out
