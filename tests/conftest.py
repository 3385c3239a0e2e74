"""Session-scoped micro fixtures shared by every test: a tokenizer and tiny random models."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)  # tiny models: one thread per xdist worker beats two oversubscribed

CORPUS = [
    f"the {a} {b} jumps over the lazy dog number {i}, and then it sleeps."
    for i, (a, b) in enumerate([("quick", "fox"), ("slow", "cat"), ("red", "hen"), ("old", "owl")] * 30)
]


@pytest.fixture(scope="session")
def tokenizer():
    from rotelab.core.training import train_tokenizer

    return train_tokenizer(CORPUS, vocab_size=300)


def _configs(V: int, ctx: int = 64):
    import transformers as tf

    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=ctx, vocab_size=V)
    return {
        "gpt2": tf.GPT2Config(vocab_size=V, n_positions=ctx, n_embd=32, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0),
        "llama": tf.LlamaConfig(num_key_value_heads=1, **small),
        "gpt_neox": tf.GPTNeoXConfig(**small),
        "qwen2": tf.Qwen2Config(num_key_value_heads=1, **small),
    }


@pytest.fixture(scope="session")
def arch_dirs(tmp_path_factory, tokenizer):
    """Tiny randomly initialised models of four architectures, saved as HF folders."""
    from transformers import AutoModelForCausalLM

    out = {}
    for name, cfg in _configs(len(tokenizer)).items():
        torch.manual_seed(0)
        d = tmp_path_factory.mktemp(name)
        AutoModelForCausalLM.from_config(cfg).save_pretrained(d)
        tokenizer.save_pretrained(d)
        out[name] = d
    return out


@pytest.fixture(scope="session")
def gpt2_lm(arch_dirs):
    from rotelab.core.models import load_model

    return load_model(arch_dirs["gpt2"])


@pytest.fixture()
def cache(tmp_path):
    from rotelab.core.cache import SignalCache

    return SignalCache(tmp_path / "cache")


@pytest.fixture(scope="session")
def tiny_testbed(tmp_path_factory):
    """The ``tiny`` testbed, built once per session (< 1 minute): every capability's micro model."""
    from rotelab.core.runs import RunFolder
    from rotelab.testbed.build import build_testbed
    from rotelab.testbed.presets import get_preset

    out = tmp_path_factory.mktemp("testbed")
    run = RunFolder(out, command="testbed build", options={"preset": "tiny"}, seed=0)
    build_testbed(get_preset("tiny"), run, seed=0, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_splits(tiny_testbed):
    from rotelab.testbed.build import read_splits

    return read_splits(tiny_testbed)
