"""Verification during training, for a Hugging Face Trainer: the callback fires before training and
every N steps, into the trainer's log history and a JSONL file, with the membership figures."""

import json

import numpy as np
import pytest
import torch

from rotelab.verify.callback import VerifyCallback, figures
from rotelab.verify.metrics import auc


def _texts(path):
    return [json.loads(line)["text"] for line in open(path)]


def test_figures_agree_with_the_loss_attack_computed_directly(micro):
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from rotelab.testbed.unlearn import mean_nll

    model = AutoModelForCausalLM.from_pretrained(micro["original"])
    tok = PreTrainedTokenizerFast.from_pretrained(micro["original"])
    ids = {k: tok(_texts(micro[k]))["input_ids"] for k in ("forget", "holdout", "retain")}
    fig = figures(model.train(), tok, ids, n_boot=200)
    assert model.training  # mode restored
    assert fig["forget_loss"] == pytest.approx(mean_nll(model, ids["forget"]), rel=1e-4)
    per = {k: [mean_nll(model, [x]) for x in ids[k]] for k in ("forget", "holdout")}
    assert fig["loss_auc"] == pytest.approx(auc(-np.array(per["forget"]), -np.array(per["holdout"])))
    assert fig["loss_auc"] > 0.9 and fig["loss_auc_detects"] and fig["loss_auc_ci"][0] <= fig["loss_auc"] <= fig["loss_auc_ci"][1]
    assert fig["n_forget"] == 30 and fig["n_holdout"] == 30 and 0.5 < fig["mink_auc"] <= 1.0


def test_the_trainer_callback_fires_every_n_steps(micro, tmp_path):
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, Trainer, TrainingArguments

    from rotelab.core.training import collate

    model = AutoModelForCausalLM.from_pretrained(micro["original"])
    tok = PreTrainedTokenizerFast.from_pretrained(micro["original"])
    retain = tok(_texts(micro["retain"]))["input_ids"]

    def batch(rows):
        x, mask, labels = collate([r["input_ids"] for r in rows], 0)
        return {"input_ids": x, "attention_mask": mask, "labels": labels}

    cb = VerifyCallback(_texts(micro["forget"]), _texts(micro["holdout"]), _texts(micro["retain"]), every=2, out=tmp_path / "verify.jsonl", n_boot=100)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=3, per_device_train_batch_size=8, learning_rate=1e-3, report_to=[],
                             save_strategy="no", use_cpu=True, logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0)
    trainer = Trainer(model=model, args=args, train_dataset=[{"input_ids": x} for x in retain], data_collator=batch, processing_class=tok, callbacks=[cb])
    trainer.train()
    steps = [e["step"] for e in cb.log]
    assert steps == [0, 2]  # before training, then every 2 steps of 3
    lines = [json.loads(line) for line in (tmp_path / "verify.jsonl").read_text().splitlines()]
    assert lines == cb.log
    logged = [e for e in trainer.state.log_history if "verify/loss_auc" in e]
    assert [e["step"] for e in logged] == [0, 2]
    assert logged[0]["verify/loss_auc"] > 0.9 and set(logged[0]) >= {"verify/mink_auc_ci", "verify/retain_loss", "verify/forget_loss", "verify/holdout_loss"}


def test_the_trainer_callback_refuses_too_few_samples():
    from rotelab.errors import RotelabError

    with pytest.raises(RotelabError, match="forget needs at least 2"):
        VerifyCallback(["a"], ["b", "c"])
    with pytest.raises(RotelabError, match="every must be"):
        VerifyCallback(["a", "b"], ["b", "c"], every=0)
