"""The models .ci/services serves: the tiny testbed (built once, resumable) and a small random
GPT-2 with another tokenizer (the conformance check must refuse auditing it with the testbed's)."""

from __future__ import annotations

import sys
from pathlib import Path


def main(work: Path) -> None:
    import torch
    import transformers as tf

    from rotelab.core.training import save_model_dir, train_tokenizer
    from rotelab.testbed.api import build

    if not (work / "tiny" / "eval.json").exists():
        build("tiny", out=work / "tiny", seed=0, progress=False)
    other = work / "other"
    if not (other / "config.json").exists():
        tok = train_tokenizer([f"another corpus entirely, line {i}: zebras quietly eat 42 apples" for i in range(200)], vocab_size=300)
        torch.manual_seed(1)
        cfg = tf.GPT2Config(vocab_size=len(tok), n_positions=80, n_embd=64, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)  # vLLM's CPU attention takes head_dim 32, not 16
        save_model_dir(tf.GPT2LMHeadModel(cfg), tok, other)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
