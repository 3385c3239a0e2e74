"""The Neighbourhood attack's masked-LM generator (Mattern et al., as MIMIR's BERT neighbours), on
a tiny random BERT saved here: the mechanics, not the quality."""

from __future__ import annotations

import json
import re
from heapq import nlargest

import numpy as np
import pytest
import torch

from rotelab.core.data import Sample
from rotelab.errors import RotelabError
from rotelab.membership import mlm as M
from rotelab.membership.api import mia


@pytest.fixture(scope="module")
def bert_dir(tiny_splits, tmp_path_factory):
    """A 2-layer random BertForMaskedLM with a word-level vocabulary of the testbed's book words."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    d = tmp_path_factory.mktemp("bert")
    words = sorted({w for name in ("members", "nonmembers") for r in tiny_splits[name] for w in re.findall(r"\w+|[^\w\s]", r["text"].lower())})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])}
    tok = BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=128)
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128))
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def bert(bert_dir):
    return M.MaskedLM.load(bert_dir)


def mimir_bert_neighbours(model, tokenizer, text: str, n_neighbors: int, token_dropout) -> list[tuple[int, int]]:
    """MIMIR's ``BertModel.generate_neighbors_`` (deterministic strategy), as (position, candidate),
    skipping special tokens as rotelab does."""
    text_tokenized = tokenizer(text, truncation=True, max_length=128, return_tensors="pt").input_ids
    num_tokens = len(text_tokenized[0, :])
    replacements = dict()
    special = set(tokenizer.all_special_ids)
    for target_token_index in range(1, num_tokens):
        target_token = text_tokenized[0, target_token_index]
        if target_token.item() in special - {tokenizer.unk_token_id}:
            continue
        embeds = model.bert.embeddings(text_tokenized)
        embeds = torch.cat((embeds[:, :target_token_index, :], token_dropout(embeds[:, target_token_index, :]).unsqueeze(dim=0), embeds[:, target_token_index + 1 :, :]), dim=1)
        token_probs = torch.softmax(model(inputs_embeds=embeds).logits, dim=2)
        original_prob = token_probs[0, target_token_index, target_token]
        top_probabilities, top_candidates = torch.topk(token_probs[:, target_token_index, :], 6, dim=1)
        for cand, prob in zip(top_candidates[0], top_probabilities[0]):
            if not cand == target_token and cand.item() not in special:
                if original_prob.item() == 1:
                    replacements[(target_token_index, cand.item())] = prob.item() / (1 - 0.9)
                else:
                    replacements[(target_token_index, cand.item())] = prob.item() / (1 - original_prob.item())
    return nlargest(n_neighbors, replacements, key=replacements.get)


def test_swaps_equal_mimirs_ranking_without_dropout(bert, tiny_splits, monkeypatch):
    """With the dropout switched off on both sides, the same candidates in the same order."""
    monkeypatch.setattr(M, "DROPOUT", 0.0)
    for r in tiny_splits["members"][:4]:
        ids, _ = bert.encode(r["text"])
        ours = [tuple(x) for x in M.best_swaps(bert, ids, 12, seed=0).tolist()]
        with torch.no_grad():
            theirs = mimir_bert_neighbours(bert.model, bert.tokenizer, r["text"], 12, torch.nn.Dropout(p=0.0))
        assert ours == theirs


def test_neighbours_replace_one_token_in_place_and_are_seeded(bert, tiny_splits):
    text = tiny_splits["members"][0]["text"]
    ids, offsets = bert.encode(text)
    swaps = M.best_swaps(bert, ids, 5, seed=3)
    assert swaps.shape == (5, 2) and np.array_equal(swaps, M.best_swaps(bert, ids, 5, seed=3))
    assert not np.array_equal(M.best_swaps(bert, ids, 40, seed=3), M.best_swaps(bert, ids, 40, seed=4))  # the dropout is drawn
    for pos, cand in swaps.tolist():
        out = M.apply_swap(bert, text, offsets, pos, cand)
        start, end = offsets[pos]
        assert out[:start] == text[:start] and out.endswith(text[end:]) and out != text
        assert out[start : len(out) - (len(text) - end)] == bert.tokenizer.decode([cand]).replace("##", "")
        assert cand != ids[pos] and 0 < pos < len(ids) - 1  # never [CLS] or [SEP]


def test_mia_uses_the_masked_lm_and_says_so(tiny_testbed, tiny_splits, bert_dir, tmp_path):
    mem = [Sample(r["id"], r["text"]) for r in tiny_splits["members"] if r["kind"] == "fact"][:8]
    non = [Sample(r["id"], r["text"]) for r in tiny_splits["nonmembers"] if r["kind"] == "fact"][:8]
    from rotelab.membership.context import MIAConfig

    m = mia(tiny_testbed, mem, non, attacks="loss,neighbourhood", neighbour_model=bert_dir, config=MIAConfig(n_neighbours=3), out=tmp_path / "o", cache=None, progress=False)
    man = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert man["options"]["neighbour_generator"] == "mlm" and man["options"]["neighbour_model"] == str(bert_dir)
    assert "neighbour_model" in man["identity"]["models"]
    d = m["neighbourhood"]["details"]
    assert d["generator"] == "mlm" and d["neighbours_per_text"]["max"] == 3
    assert man["notes"]["attack_neighbourhood"]["generator"] == "mlm"
    assert "masked-LM" in (tmp_path / "o" / "report.html").read_text()
    plain = mia(tiny_testbed, mem, non, attacks="neighbourhood", config=MIAConfig(n_neighbours=3), out=tmp_path / "e", cache=None, progress=False)
    assert plain["neighbourhood"]["details"]["generator"] == "embedding-swap"
    assert json.loads((tmp_path / "e" / "manifest.json").read_text())["options"]["neighbour_generator"] == "embedding-swap"


def test_a_causal_lm_is_refused_as_neighbour_model_before_a_folder(tiny_testbed, tiny_splits, tmp_path):
    mem, non = ["a member text here"], ["a non member text"]
    with pytest.raises(RotelabError, match="cannot load a masked language model"):
        mia(tiny_testbed, mem, non, attacks="neighbourhood", neighbour_model=tiny_testbed / "model", out=tmp_path / "o", cache=None, progress=False)
    assert not (tmp_path / "o").exists()
