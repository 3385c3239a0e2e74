import shutil

import pytest
import torch

from rotelab.core.access import Access
from rotelab.core.models import LogprobsOnlyModel, load_model
from rotelab.core.signals import compute_signals
from rotelab.errors import RotelabError

ARCHS = ["gpt2", "llama", "gpt_neox", "qwen2"]


@pytest.mark.parametrize("arch", ARCHS)
def test_each_architecture_loads_and_produces_signals(arch_dirs, arch):
    lm = load_model(arch_dirs[arch])
    sig = compute_signals(lm, ["the quick fox jumps", "the lazy dog"], progress=False)
    assert [s.n_scored for s in sig] == [len(s.token_ids) - 1 for s in sig]
    assert all(s.logp.max() <= 0 and (s.sigma > 0).all() for s in sig)


def test_testbed_folder_resolves_to_its_model(arch_dirs, tmp_path):
    shutil.copytree(arch_dirs["gpt2"], tmp_path / "tb" / "model")
    assert load_model(tmp_path / "tb").max_length == 64


def test_missing_folder_and_config_are_one_line_errors(tmp_path):
    with pytest.raises(RotelabError, match="model folder not found"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RotelabError, match="no config.json"):
        load_model(tmp_path / "empty")


def test_pickle_only_weights_refused_unless_allowed(arch_dirs, tmp_path):
    d = tmp_path / "pkl"
    shutil.copytree(arch_dirs["gpt2"], d)
    from safetensors.torch import load_file

    torch.save(load_file(d / "model.safetensors"), d / "pytorch_model.bin")
    (d / "model.safetensors").unlink()
    with pytest.raises(RotelabError, match="--allow-pickle"):
        load_model(d)


def test_logprobs_only_backend_refuses_more_than_logprobs(gpt2_lm):
    q = LogprobsOnlyModel(gpt2_lm)
    assert q.access == frozenset({Access.LOGPROBS})
    assert compute_signals(q, ["the quick fox"], progress=False)[0].n_scored > 0
    with pytest.raises(RotelabError, match="needs generation access"):
        q.greedy([[1, 2]], 3)
    with pytest.raises(RotelabError, match="needs hidden access"):
        q.hidden_states([[1, 2]])
    with pytest.raises(RotelabError, match="needs weights access.*log-probs-only"):
        q.model


def test_hidden_states_shape(gpt2_lm):
    ids = gpt2_lm.tokenize(["the quick fox", "a"])
    hs = gpt2_lm.hidden_states(ids)
    assert hs[0].shape == (3, len(ids[0]), 32) and hs[1].shape[1] == len(ids[1])
