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
