"""Testbed.find: a testbed's companions from the testbed folder, its model/, an unlearning folder
or one of its checkpoints; None for anything else, never an exception."""

import json

import pytest

from rotelab.testbed.folder import Testbed


def _model(d):
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    return d


@pytest.fixture()
def tree(tmp_path):
    tb = tmp_path / "tb"
    _model(tb / "model")
    _model(tb / "reference")
    (tb / "splits").mkdir()
    for name in ("members", "forget", "prefix_pool"):
        (tb / "splits" / f"{name}.jsonl").write_text('{"text": "x"}\n')
    u = tmp_path / "u"
    _model(u / "model")
    _model(u / "checkpoints" / "1.0x")
    (u / "manifest.json").write_text(json.dumps({"command": "testbed unlearn", "testbed": str(tb)}))
    return tb, u


def test_testbed_folder_and_its_model_folder_find_the_same_companions(tree):
    tb, _ = tree
    for path in (tb, tb / "model", str(tb / "model")):
        found = Testbed.find(path)
        assert found.root == tb and found.model == tb / "model" and found.reference == tb / "reference"
        assert found.split("prefix_pool") == tb / "splits" / "prefix_pool.jsonl" and found.split("nope") is None


def test_unlearning_folder_model_and_checkpoint_take_the_testbeds_splits_and_reference(tree):
    tb, u = tree
    for path, model in ((u, u / "model"), (u / "model", u / "model"), (u / "checkpoints" / "1.0x", u / "checkpoints" / "1.0x")):
        found = Testbed.find(path)
        assert (found.root, found.model, found.reference) == (u, model, tb / "reference")
        assert set(found.splits) == {"members", "forget", "prefix_pool"} and found.split("forget").parent == tb / "splits"


def test_splits_come_only_from_the_testbeds_splits_folder(tree, tmp_path):
    tb, u = tree
    elsewhere = tmp_path / "secret.jsonl"
    elsewhere.write_text('{"text": "x"}\n')
    m = json.loads((u / "manifest.json").read_text())
    (u / "manifest.json").write_text(json.dumps(m | {"splits": {"forget": str(elsewhere), "secret": str(elsewhere)}}))
    found = Testbed.find(u)
    assert "secret" not in found.splits and found.split("forget") == tb / "splits" / "forget.jsonl"


def test_testbed_without_reference_and_unlearning_folder_whose_testbed_is_gone(tree):
    import shutil

    tb, u = tree
    shutil.rmtree(tb / "reference")
    assert Testbed.find(tb).reference is None
    shutil.rmtree(tb)
    found = Testbed.find(u)
    assert found.root == u and found.splits == {} and found.reference is None


@pytest.mark.parametrize(
    "manifest",
    ["[1, 2]", "{oops", json.dumps({"testbed": None}), json.dumps({"testbed": 3}), json.dumps({"testbed": ""}), json.dumps({"command": "signals"})],
)
def test_anything_else_is_none_never_an_exception(tmp_path, manifest):
    f = _model(tmp_path / "f")
    (f / "manifest.json").write_text(manifest)
    _model(f / "model")
    assert Testbed.find(f) is None and Testbed.find(f / "model") is None


def test_plain_model_missing_path_file_and_reference_folder_are_none(tree, tmp_path):
    tb, u = tree
    plain = _model(tmp_path / "plain")
    (tmp_path / "file").write_text("x")
    for path in (plain, tmp_path / "missing", tmp_path / "file", tb / "reference", tb / "splits", tb / "checkpoints" / "x"):
        assert Testbed.find(path) is None, path


def test_a_real_testbed_and_its_unlearning_run(tiny_testbed, unlearn_run):
    found = Testbed.find(tiny_testbed / "model")
    assert found.root == tiny_testbed and found.reference == tiny_testbed / "reference"
    assert set(found.splits) >= {"members", "nonmembers", "forget", "retain", "holdout", "paraphrases", "canaries", "prefix_pool"}
    u = Testbed.find(unlearn_run)
    assert u.model == unlearn_run / "model" and u.reference == tiny_testbed / "reference" and u.split("forget") == found.split("forget")
