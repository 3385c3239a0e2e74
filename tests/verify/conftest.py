"""A micro world with ground truth for the verdict tests: a GPT-2 that memorized 30 facts, and
models that forgot them in three ways (barely, hidden: suppressed so that a few steps on retain
data bring them back, never learned: the retrained one)."""

from __future__ import annotations

import random
from dataclasses import replace

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
    """Folders ``original``, ``retrained`` and ``retrained2`` (retain only, two seeds), ``barely`` and ``hidden`` (5 and 10
    GradDiff steps from the original: :func:`graddiff`), the JSONL
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
    for name, seed in (("retrained", 0), ("retrained2", 1)):  # two oracles: the second is the first's control
        retrained = new_model(spec, seed=seed)
        train_on_schedule(retrained, ids["retain"], [30] * 30, replace(train, seed=seed), progress=False)
        save_model_dir(retrained, tok, root / name)
    for name, steps in (("barely", 5), ("hidden", 10)):
        save_model_dir(graddiff(model, ids["forget"], ids["retain"], steps), tok, root / name)
    out |= {"root": root} | {k: root / k for k in ("original", "retrained", "retrained2", "barely", "hidden")}
    return out


def graddiff(model, forget: list[list[int]], retain: list[list[int]], steps: int, *, lr: float = 1e-3, seed: int = 0):
    """A copy of ``model`` after ``steps`` GradDiff steps (ascent on 16 forget texts, descent on 16
    retain texts). Measured on this world: 5 steps leave the forget set's loss below the holdout's
    (AUC 0.82); 10 steps bring it to the holdout's (AUC 0.55), while 60 steps of fine-tuning on
    retain alone at lr 1e-3 bring it back (AUC 0.83, 45% of the gap recovered; 9 to 11 GradDiff
    steps give the same verdict)."""
    import copy

    from rotelab.core.training import collate

    torch.manual_seed(seed)
    rng = random.Random(seed)
    m = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=0.0)
    for _ in range(steps):
        (xf, mf, lf), (xr, mr, lr_) = collate(rng.sample(forget, 16), 0), collate(rng.sample(retain, 16), 0)
        loss = -m(input_ids=xf, attention_mask=mf, labels=lf).loss + m(input_ids=xr, attention_mask=mr, labels=lr_).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    return m.eval()
