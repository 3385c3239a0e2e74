"""Tokenizers beyond the testbed's: one that adds no BOS although it declares one (GPT-2 style) and
one whose BOS is another id than EOS and padding. Every attack must read every model input from
the tokenizer's own first token, and score the first text token only where a BOS precedes it:
never against nothing, never against an id the tokenizer does not add."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rotelab.core.models import load_model
from rotelab.core.runs import read_parquet
from rotelab.membership.api import mia
from rotelab.membership.attacks.recall import shot_ids
from rotelab.membership.context import MIAConfig

WORDS = ["quick fox", "slow cat", "red hen", "old owl", "lazy dog", "brown bear", "tiny ant", "grey wolf"]
MEMBERS = [f"the {w} jumps over the fence number {i}, and then it sleeps." for i, w in enumerate(WORDS[:4])]
NONMEMBERS = [f"a {w} walks under the bridge at noon {i} and sings." for i, w in enumerate(WORDS[4:])]
POOL = ["the dog sleeps.", "a cat sings."]
MEMBER_POOL = ["the hen jumps.", "an owl sleeps."]
CORPUS = ["the fox and the dog walk.", "a bear sings at noon.", "the wolf jumps over the bridge.", "an ant sleeps."]
ATTACKS = "loss,zlib,mink,minkpp,lowercase,neighbourhood,recall,conrecall,dcpdd,gradnorm,samia"


@pytest.fixture(scope="module")
def folders(tokenizer, tmp_path_factory):
    """Tiny random GPT-2 models with the shared tokenizer (BOS = EOS = pad = id 0, added), the same
    tokenizer adding nothing, and one adding a separate ``<s>`` (the last id)."""
    from tokenizers import processors
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    base = tmp_path_factory.mktemp("tok")
    tokenizer.save_pretrained(base)
    out = {}
    for name in ("bos_shared", "no_bos", "bos_other"):
        tok = PreTrainedTokenizerFast.from_pretrained(base)
        if name == "no_bos":
            tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
        if name == "bos_other":
            tok.add_special_tokens({"bos_token": "<s>"})
            tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
        torch.manual_seed(0)
        cfg = GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=32, n_layer=2, n_head=2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        d = tmp_path_factory.mktemp(name)
        GPT2LMHeadModel(cfg).save_pretrained(d)
        tok.save_pretrained(d)
        out[name] = d
    return out


@pytest.mark.parametrize("name, bos", [("bos_shared", [0]), ("no_bos", []), ("bos_other", [300])])
def test_every_attack_starts_from_the_tokenizers_own_first_token(folders, tmp_path, name, bos):
    lm = load_model(folders[name])
    assert lm.bos_ids == bos and lm.tokenizer.bos_token_id == (bos or [0])[0]  # no_bos declares id 0 yet adds nothing
    lm._head_separable()  # its one-off numeric probe (rows 0..7, 8..15) is no attack input
    first: list[int] = []  # the first id of every full-sequence model input (decoding steps of one token are left out)
    emb = lm.model.get_input_embeddings()
    hook = emb.register_forward_hook(lambda m, args, out: first.extend(args[0][:, 0].tolist()) if args[0].shape[1] > 1 else None)
    try:
        m = mia(lm, MEMBERS, NONMEMBERS, attacks=ATTACKS, prefix_pool=POOL, member_prefix_pool=MEMBER_POOL, frequency_corpus=CORPUS,
                config=MIAConfig(n_neighbours=2, samia_samples=2, recall_shots=2), out=tmp_path / "o", cache=None, progress=False)
    finally:
        hook.remove()
    assert first, "the hook saw the model's inputs"
    if bos:
        assert set(first) == set(bos)  # signals, lowercase, neighbours, prefixes, gradients, sampling prompts
    else:
        assert 0 not in first  # nothing prepends the declared BOS the tokenizer does not add
    texts = MEMBERS + NONMEMBERS
    scores = read_parquet(tmp_path / "o" / "scores.parquet")
    assert all(np.isfinite(scores[a]).all() for a in m if a != "bag_of_words")

    # Loss and ReCaLL from the raw logits of the HF model: token t+1 scored on tokens 0..t.
    def mean_ll(seq: list[int], n: int) -> float:
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(torch.tensor([seq])).logits[0].double(), -1)
        return float(np.mean([logp[t, seq[t + 1]].item() for t in range(len(seq) - n, len(seq) - 1)]))

    shots = shot_ids(lm, POOL)
    for i, t in enumerate(texts):
        x = lm.tokenizer(t)["input_ids"]
        assert x[: len(bos)] == bos and x[len(bos)] != (bos or [0])[0]  # the first text token follows the BOS, if any
        plain = mean_ll(x, len(x))  # len(x) - 1 predictions: the first text token is scored only after a BOS
        assert scores["loss"][i] == pytest.approx(plain, rel=1e-5)
        prefixed = mean_ll(bos + shots[0] + shots[1] + x[len(bos):], len(x))
        assert scores["recall"][i] == pytest.approx(prefixed / plain, rel=1e-5)
    assert m["recall"]["details"]["target_tokens_scored"] == sum(len(lm.tokenizer(t)["input_ids"]) - 1 for t in texts)
