"""Killing a run midway keeps every finished batch of every extra pass: the resumed run computes
only the rest and its results equal an uninterrupted run's."""

from __future__ import annotations

import numpy as np
import pytest

from rotelab.core.models import load_model
from rotelab.core.runs import read_parquet
from rotelab.membership.api import mia
from rotelab.membership.context import MIAConfig
from rotelab.membership.remind.api import remind
from rotelab.membership.remind.landscape import ProbeConfig
from rotelab.membership.remind.suite import RemindConfig


class Counting:
    """Wraps a model method: counts calls and raises KeyboardInterrupt (a Ctrl-C) after ``stop``."""

    def __init__(self, lm, name: str):
        self.real, self.calls, self.stop = getattr(lm, name), 0, None
        setattr(lm, name, self)

    def __call__(self, *a, **k):
        if self.stop is not None and self.calls >= self.stop:
            raise KeyboardInterrupt
        self.calls += 1
        return self.real(*a, **k)

    def reset(self, stop: int | None = None) -> None:
        self.calls, self.stop = 0, stop


def test_interrupted_mia_resumes_mid_pass_to_the_same_scores(tiny_testbed, sets, tmp_path):
    lm = load_model(tiny_testbed)
    logp, signals = Counting(lm, "forward_logp"), Counting(lm, "forward_signals")
    kw = dict(attacks="lowercase,neighbourhood,recall,gradnorm", config=MIAConfig(n_neighbours=4, batch_size=8), cache=None, progress=False)
    whole = mia(lm, sets / "mem.jsonl", sets / "non.jsonl", out=tmp_path / "whole", **kw)
    n_batches = logp.calls  # 40 x 4 neighbours / 8 + 40 / 8 (ReCaLL) = 25

    logp.reset(stop=5)
    with pytest.raises(KeyboardInterrupt):
        mia(lm, sets / "mem.jsonl", sets / "non.jsonl", out=tmp_path / "cut", **kw)
    assert (tmp_path / "cut" / "passes").is_dir()
    logp.reset()
    signals.reset()
    resumed = mia(lm, sets / "mem.jsonl", sets / "non.jsonl", out=tmp_path / "cut", **kw)
    assert logp.calls == n_batches - 5 and signals.calls == 0  # signals and lowercase were saved too
    assert resumed == whole
    a, b = read_parquet(tmp_path / "whole" / "scores.parquet"), read_parquet(tmp_path / "cut" / "scores.parquet")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not (tmp_path / "cut" / "passes").exists()  # dropped once the scores are written


def test_interrupted_remind_resumes_mid_pass_to_the_same_features(tiny_testbed, sets, tmp_path):
    lm = load_model(tiny_testbed)
    logp = Counting(lm, "forward_logp")
    kw = dict(config=RemindConfig(probe=ProbeConfig(ranks=(1, 2), rates=(), k=2), folds=3, batch_size=8), paraphrases=[], cache=None, progress=False)
    whole = remind(lm, sets / "retain.jsonl", sets / "forget.jsonl", sets / "holdout.jsonl", out=tmp_path / "whole", **kw)
    n_batches = logp.calls
    logp.reset(stop=3)
    with pytest.raises(KeyboardInterrupt):
        remind(lm, sets / "retain.jsonl", sets / "forget.jsonl", sets / "holdout.jsonl", out=tmp_path / "cut", **kw)
    logp.reset()
    resumed = remind(lm, sets / "retain.jsonl", sets / "forget.jsonl", sets / "holdout.jsonl", out=tmp_path / "cut", **kw)
    assert logp.calls == n_batches - 3 and resumed == whole
    a, b = read_parquet(tmp_path / "whole" / "features.parquet"), read_parquet(tmp_path / "cut" / "features.parquet")
    assert all(np.array_equal(a[k], b[k]) for k in a)
