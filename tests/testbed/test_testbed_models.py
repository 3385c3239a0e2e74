import json

import pytest

from rotelab.core.models import load_model
from rotelab.core.signals import compute_signals


def test_model_and_reference_are_safetensors_folders_with_the_same_tokenizer(tiny_testbed):
    for d in ("model", "reference"):
        assert (tiny_testbed / d / "model.safetensors").exists() and (tiny_testbed / d / "tokenizer.json").exists()
    assert (tiny_testbed / "model" / "tokenizer.json").read_text() == (tiny_testbed / "reference" / "tokenizer.json").read_text()
    lm = load_model(tiny_testbed)  # a testbed folder stands for its model/
    assert lm.max_length == 80


def test_tiny_model_really_memorized_its_duplicated_members(tiny_testbed):
    ev = json.loads((tiny_testbed / "eval.json").read_text())
    assert ev["loss_auc_books_by_copies"]["60"]["auc"] > 0.9
    assert ev["loss_auc_books_seen_ge4"]["auc"] > 0.85
    assert ev["loss_auc_facts"]["auc"] > 0.9
    assert ev["canary_secret_extraction_by_copies"]["60"]["rate"] > 0
    assert ev["canary_secret_extraction_by_copies"]["0"]["rate"] == 0


def test_reference_model_did_not_see_the_members(tiny_testbed, tiny_splits):
    target, ref = load_model(tiny_testbed / "model"), load_model(tiny_testbed / "reference")
    dup = [s["text"] for s in tiny_splits["members"] if s["copies"] >= 15]
    nll_t = [s.nll for s in compute_signals(target, dup, progress=False)]
    nll_r = [s.nll for s in compute_signals(ref, dup, progress=False)]
    assert sum(nll_r) / len(nll_r) > sum(nll_t) / len(nll_t) + 0.5


def test_manifest_records_provenance_sizes_training(tiny_testbed):
    m = json.loads((tiny_testbed / "manifest.json").read_text())
    assert m["preset"]["name"] == "tiny" and m["seed"] == 0
    assert m["provenance"]["alice29"]["sha256"] and "Brotli==1.2.1" in m["provenance"]["alice29"]["archive"]
    assert m["sizes"]["members"] > 0 and m["training"]["model"]["tokens"] > 0
    assert set(m["steps_done"]) == {"splits", "tokenizer", "model", "reference", "eval"}


def test_resuming_a_testbed_built_with_another_preset_is_refused(tiny_testbed, tmp_path):
    import dataclasses
    import shutil

    from rotelab.core.runs import RunFolder
    from rotelab.errors import RotelabError
    from rotelab.testbed.build import build_testbed
    from rotelab.testbed.presets import get_preset

    shutil.copy(tiny_testbed / "manifest.json", tmp_path / "manifest.json")  # finished steps, tiny preset
    changed = dataclasses.replace(get_preset("tiny"), n_people=25)
    with pytest.raises(RotelabError, match="different 'tiny' preset"):
        build_testbed(changed, RunFolder(tmp_path, command="testbed build", options={"preset": "tiny"}, seed=0), seed=0, progress=False)
    assert not (tmp_path / "splits").exists()
    ev = json.loads((tiny_testbed / "eval.json").read_text())
    assert ev["extraction_books_seen_ge20"]["n"] == sum(v["n"] for c, v in ev["extraction_books_by_copies"].items() if c.split()[0].isdigit() and int(c.split()[0]) >= 20)
