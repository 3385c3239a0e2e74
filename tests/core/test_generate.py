import pytest
import torch

from rotelab.core.models import load_model
from rotelab.errors import RotelabError

PROMPTS = ["the quick", "the old owl sleeps, and then", "a"]


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox", "qwen2"])
def test_batched_greedy_equals_model_generate(arch_dirs, arch):
    lm = load_model(arch_dirs[arch])
    prompts = lm.tokenize(PROMPTS)
    ours = lm.greedy(prompts, 12, batch_size=3)
    for p, got in zip(prompts, ours):
        ref = lm.model.generate(
            torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
            do_sample=False, max_new_tokens=12, eos_token_id=None, pad_token_id=0,
        )[0, len(p):].tolist()
        assert got == ref


def test_greedy_refuses_prompt_beyond_context(gpt2_lm):
    with pytest.raises(RotelabError, match="context 64"):
        gpt2_lm.greedy([[1] * 60], 10)


def test_sampling_is_seeded_per_prompt_and_sample_not_per_batch(gpt2_lm):
    from rotelab.core.generate import Sampling, decode

    prompts = gpt2_lm.tokenize(PROMPTS)
    s = Sampling(temperature=1.0, n=3, seed=7)
    together = decode(gpt2_lm, prompts, 8, sampling=s, batch_size=9).tokens
    one_by_one = decode(gpt2_lm, prompts, 8, sampling=s, batch_size=1).tokens
    alone = decode(gpt2_lm, prompts[1:2], 8, sampling=s).tokens  # prompt 1 is prompt 0 here: other seeds
    assert together == one_by_one
    assert len(together) == 3 and all(len(t) == 3 and all(len(x) == 8 for x in t) for t in together)
    assert len({tuple(x) for x in together[1]}) > 1  # three continuations differ
    assert alone[0] != together[1]  # the seed follows the prompt's index in the call
    assert decode(gpt2_lm, prompts, 8, sampling=Sampling(temperature=1.0, n=3, seed=8)).tokens != together


def test_a_tiny_nucleus_is_greedy(gpt2_lm):
    from rotelab.core.generate import Sampling, decode

    prompts = gpt2_lm.tokenize(PROMPTS)
    nucleus = decode(gpt2_lm, prompts, 8, sampling=Sampling(temperature=0.7, top_p=1e-6, n=2)).tokens
    assert [t[0] for t in nucleus] == [t[1] for t in nucleus] == gpt2_lm.greedy(prompts, 8)


def test_sampling_follows_the_model_distribution(gpt2_lm):
    """Inverse-CDF draws of the first token match softmax(logits / T) (chi-square, 4000 draws)."""
    import numpy as np
    from scipy.stats import chisquare

    from rotelab.core.generate import Sampling, decode

    p = gpt2_lm.tokenize(["the quick"])[0]
    with torch.inference_mode():
        probs = torch.softmax(gpt2_lm.model(torch.tensor([p])).logits[0, -1] / 2.0, -1).numpy()
    draws = [t[0] for t in decode(gpt2_lm, [p], 1, sampling=Sampling(temperature=2.0, n=4000, seed=1), batch_size=4000).tokens[0]]
    top = np.argsort(-probs)[:5]
    observed = [sum(d == v for d in draws) for v in top] + [sum(d not in top for d in draws)]
    expected = list(probs[top] * 4000) + [(1 - probs[top].sum()) * 4000]
    assert chisquare(observed, expected).pvalue > 1e-3


def test_a_hook_rewrites_each_steps_logits_and_logs(gpt2_lm):
    from rotelab.core.generate import DecodeHook, decode

    class Ban(DecodeHook):
        def begin(self, rows, prompt_len, n_new):
            self.log = torch.zeros(rows, n_new)

        def logits(self, step, z, inputs, handle):
            self.log[:, step] = step
            return z.index_fill(-1, torch.tensor([greedy_first]), float("-inf"))

        def end(self):
            return {"step": self.log}

    prompts = gpt2_lm.tokenize(PROMPTS)
    greedy_first = gpt2_lm.greedy(prompts[:1], 1)[0][0]
    d = decode(gpt2_lm, prompts, 4, hook=Ban())
    assert all(greedy_first not in t[0] for t in d.tokens)
    assert d.logs["step"][2][0] == [0.0, 1.0, 2.0, 3.0]


def test_bad_sampling_options_are_one_line(gpt2_lm):
    from rotelab.core.generate import Sampling, decode

    for s, msg in ((Sampling(temperature=0), "temperature must be > 0"), (Sampling(top_p=0), r"top_p must be in \(0, 1\]"), (Sampling(n=0), "n \\(continuations per prompt\\) must be >= 1")):
        with pytest.raises(RotelabError, match=msg):
            decode(gpt2_lm, [[1, 2]], 2, sampling=s)
    with pytest.raises(RotelabError, match="--batch-size must be >= 1"):
        decode(gpt2_lm, [[1, 2]], 2, batch_size=0)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_shared_prefill_equals_one_prefill_per_row(arch_dirs, arch):
    """The n continuations of a prompt share one prefill (KV rows copied): the same tokens as
    prefilling every row (a hook with its own ``attach`` turns the sharing off)."""
    from contextlib import nullcontext

    from rotelab.core.generate import DecodeHook, Sampling, _share_prefill, decode, left_pad

    class PerRow(DecodeHook):
        def attach(self, lm):
            return nullcontext()

    lm = load_model(arch_dirs[arch])
    prompts = lm.tokenize(PROMPTS) + lm.tokenize(PROMPTS[:1])  # a repeated prompt too
    s = Sampling(temperature=1.0, top_p=0.9, n=5, seed=3)
    shared = decode(lm, prompts, 9, sampling=s, batch_size=12).tokens
    assert shared == decode(lm, prompts, 9, sampling=s, batch_size=12, hook=PerRow()).tokens
    ids, mask = left_pad([prompts[0], prompts[1], prompts[0]], lm.pad_id, "cpu")
    assert _share_prefill(ids, mask).tolist() in ([0, 1, 0], [1, 0, 1])
    assert _share_prefill(ids[:2], mask[:2]) is None
