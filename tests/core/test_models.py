import shutil

import numpy as np
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
    assert q.access == frozenset({Access.LOGPROBS, Access.TOPK, Access.DISTRIBUTION})  # issue 22: access levels grew
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


def _tokenizer(vocab_size=300, *, bos=True, bos_token="<|endoftext|>", extra_specials=()):
    """A byte-level BPE like the testbed's, with or without a BOS post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from tests.conftest import CORPUS

    specials = [*extra_specials, bos_token]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    if bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos_token} $A", special_tokens=[(bos_token, tok.token_to_id(bos_token))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos_token, eos_token=bos_token, pad_token=bos_token)


def _gpt2_dir(tmp_path, tok, n_vocab=None):
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.GPT2Config(vocab_size=n_vocab or len(tok), n_positions=64, n_embd=32, n_layer=1, n_head=2)
    d = tmp_path / "m"
    tf.GPT2LMHeadModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_bos_ids_for_tokenizers_with_without_and_with_another_bos(tmp_path, gpt2_lm):
    assert gpt2_lm.bos_ids == [0]  # the testbed tokenizer prepends <|endoftext|> = 0
    none = load_model(_gpt2_dir(tmp_path / "a", _tokenizer(bos=False)))
    assert none.bos_ids == [] and none.tokenize(["a"])[0][0] != 0
    other = _tokenizer(extra_specials=("<pad>", "<unk>", "<s>"), bos_token="<s>")
    lm = load_model(_gpt2_dir(tmp_path / "b", other))
    assert lm.bos_ids == [other.convert_tokens_to_ids("<s>")] == [2]  # <pad> 0, <unk> 1, <s> 2


def test_device_without_hardware_is_one_line(arch_dirs):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RotelabError) as e:
        load_model(arch_dirs["gpt2"], device="cuda")
    assert str(e.value) == "--device cuda: this machine has no CUDA device (use --device cpu)"
    with pytest.raises(RotelabError, match="--device must be cpu, cuda"):
        load_model(arch_dirs["gpt2"], device="gpu0")


def test_a_tokenizer_that_does_not_belong_to_the_model_is_refused(tmp_path):
    """Ids beyond the embedding rows are refused at load (probe text) and at tokenize time."""
    big = _tokenizer(vocab_size=600)
    d = _gpt2_dir(tmp_path, big, n_vocab=300)  # the model's embedding has 300 rows
    with pytest.raises(RotelabError, match=r"token id \d+ is beyond the model's 300 embedding rows; the tokenizer does not belong to this model"):
        load_model(d)


def test_a_smaller_tokenizer_than_the_embedding_is_fine(tmp_path):
    """len(tokenizer) < embedding rows is legitimate (Pythia, OPT pad their embeddings)."""
    tok = _tokenizer(vocab_size=300)
    lm = load_model(_gpt2_dir(tmp_path, tok, n_vocab=len(tok) + 37))
    assert lm.n_embeddings == len(tok) + 37 and lm.tokenize(["the quick fox"])[0]


def _mamba2_dir(tmp_path, tokenizer):
    import transformers as tf

    torch.manual_seed(0)
    cfg = tf.Mamba2Config(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, state_size=16, expand=2, n_groups=1, head_dim=16, num_heads=4, conv_kernel=4, chunk_size=16)
    d = tmp_path / "mamba2"
    tf.Mamba2ForCausalLM(cfg).save_pretrained(d)
    tokenizer.save_pretrained(d)
    return d


def test_a_recurrent_model_takes_its_context_from_max_length(tmp_path, tokenizer):
    """Mamba-2 (the EHR foundation models' architecture) has no context in its config."""
    d = _mamba2_dir(tmp_path, tokenizer)
    with pytest.raises(RotelabError, match="gives no context length .* pass --max-length N"):
        load_model(d)
    lm = load_model(d, max_length=48)
    assert (lm.max_length, lm.max_length_source) == (48, "--max-length")
    sig = compute_signals(lm, ["the quick fox jumps over the lazy dog"], progress=False)[0]
    assert sig.n_scored == len(sig.token_ids) - 1 and np.isfinite(sig.logp).all()


def test_max_length_cannot_exceed_the_configs_context(arch_dirs):
    with pytest.raises(RotelabError, match=r"--max-length 100 exceeds the model's context of 64 tokens \(config n_positions\)"):
        load_model(arch_dirs["gpt2"], max_length=100)
    lm = load_model(arch_dirs["gpt2"], max_length=32)
    assert lm.max_length == 32 and lm.describe()["max_length_source"] == "--max-length"
    assert load_model(arch_dirs["gpt2"]).describe()["max_length_source"] == "config n_positions"


def test_the_manifest_records_each_models_context_and_its_source(arch_dirs, tmp_path):
    import json

    from rotelab.core.runs import open_run

    lm = load_model(arch_dirs["gpt2"])
    with open_run(tmp_path / "r", "x", {}, models={"model": lm}):
        pass
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["models"]["model"]["max_length"] == 64 and m["models"]["model"]["max_length_source"] == "config n_positions"
    assert m["identity"]["models"]["model"] == lm.cache_namespace
