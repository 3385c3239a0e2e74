"""The diffusion entry points: bad input is one line before any run folder, resumes only from the
same inputs and options, ``--json`` is one JSON document, mitigations plug in through the registry."""

import json
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from rotelab.diffusion import api
from rotelab.diffusion.cli import app
from rotelab.errors import RotelabError

runner = CliRunner()


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def bad(tmp_path_factory, tiny_testbed):
    """Data files with one defect each."""
    d = tmp_path_factory.mktemp("bad")
    rows = [json.loads(line) for line in (tiny_testbed[0] / "items.jsonl").read_text().splitlines()]
    img = lambda r: str(tiny_testbed[0] / r["image"])  # noqa: E731
    return {
        "label": _jsonl(d / "label.jsonl", [{"id": "a", "text": "w5 w6", "label": "yes"}]),
        "words": _jsonl(d / "words.jsonl", [{"id": "a", "text": "a cat on a mat", "label": 1}]),
        "vocab": _jsonl(d / "vocab.jsonl", [{"id": "a", "text": "w5 w99999", "label": 0}]),
        "image": _jsonl(d / "image.jsonl", [{"id": "a", "text": "w5 w6", "label": 1, "image": "missing.png"}]),
        "no_controls": _jsonl(d / "no_controls.jsonl", [{**r, "image": img(r)} for r in rows if r["label"] == 1]),
    }


@pytest.mark.parametrize("args, message", [
    (["detect", "--threshold", "2"], "--threshold must be in [-1, 1]; got 2.0"),
    (["detect", "--n-noises", "0"], "--n-noises must be >= 1; got 0"),
    (["dori", "--init", "zeros"], "--init must be one of prompt, gaussian, other; got 'zeros'"),
    (["dori", "--lr", "0"], "--lr must be > 0; got 0.0"),
    (["dori", "--steps", "0"], "--steps must be >= 1; got 0"),
    (["locality", "--starts", "1"], "--starts must be >= 2; got 1"),
    (["mitigate", "--method", "nemoo"], "--method: unknown mitigation 'nemoo'. Did you mean: nemo? Available: "),
    (["mitigate", "--method", "adversarial", "--adv-steps", "0"], "--adv-steps must be >= 1; got 0"),
    (["mitigate", "--method", "nemo", "--pruning", "."], "--pruning: nemo does not build on a pruning; only adversarial do"),
    (["mitigate", "--method", "nemo", "--data", "{no_controls}"], "no_controls.jsonl: calibration needs at least 2 non-memorized prompts (label 0)"),
    (["detect", "--data", "{label}"], "label.jsonl: item 'a': field 'label' must be 0 or 1; got 'yes'"),
    (["detect", "--data", "{words}"], "words.jsonl: text 'a cat on a mat': word 'a' is not w<id>"),
    (["detect", "--data", "{vocab}"], "vocab.jsonl: text 'w5 w99999' has token id 99999 beyond the text encoder's 200 embedding rows"),
    (["detect", "--data", "{image}"], "image.jsonl: item 'a': image"),
    (["testbed", "build", "--preset", "huge"], "--preset must be one of tiny, small, small16; got 'huge'"),
])
def test_bad_input_is_one_line_and_creates_no_run_folder(tmp_path, tiny_testbed, bad, args, message):
    args = [a.format(**bad) for a in args]
    model = [] if args[0] == "testbed" else ["--model", str(tiny_testbed[0])]
    res = runner.invoke(app, [*args, *model, "--out", str(tmp_path / "run")])
    assert isinstance(res.exception, RotelabError), res.output
    assert message in str(res.exception) and "\n" not in str(res.exception)
    assert not (tmp_path / "run").exists()


def test_json_output_is_one_document_even_with_progress_bars(tmp_path, tiny_testbed, few_items):
    """rich's track() wrote its bar to stdout when stdout was not a terminal; the bars now go to stderr."""
    r = subprocess.run([sys.executable, "-m", "rotelab.cli", "diffusion", "detect", "--model", str(tiny_testbed[0]), "--data", str(few_items),
                        "--n-noises", "1", "--n-seeds", "1", "--out", str(tmp_path / "det"), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) == {"wen", "replication"} and out["wen"]["n_members"] == 1


def test_a_rerun_with_other_inputs_or_options_is_refused_or_recomputed_with_overwrite(tmp_path, tiny_testbed, few_items):
    tb, out = tiny_testbed[0], tmp_path / "det"
    args = ["detect", "--model", str(tb), "--n-noises", "1", "--n-seeds", "1", "--out", str(out), "--json", "-q"]
    first = runner.invoke(app, [*args, "--data", str(few_items)])
    assert first.exit_code == 0, first.output
    assert json.loads(runner.invoke(app, [*args, "--data", str(few_items)]).stdout) == json.loads(first.stdout), "same inputs: resumes"
    other = tmp_path / "other.jsonl"
    other.write_text(few_items.read_text().splitlines()[0] + "\n")
    for changed in (["--data", str(other)], ["--data", str(few_items), "--threshold", "0.5"]):
        res = runner.invoke(app, [*args, *changed])
        assert isinstance(res.exception, RotelabError) and "its results were computed from other" in str(res.exception), res.output
    res = runner.invoke(app, [*args, "--data", str(other), "--overwrite"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["wen"]["n_members"] == 1 and "not_memorized" not in json.loads(res.stdout)["replication"]


def test_the_api_takes_loaded_models_and_in_memory_items(tmp_path, tiny):
    model, items = tiny[0], tiny[1]
    two = [{k: v for k, v in it.items() if k != "id"} for it in items[:1] + items[-1:]]  # no ids: role-numbered
    res = api.detect(model, two, out=tmp_path / "det", n_noises=1, n_seeds=1, progress=False)
    assert res["wen"]["n_members"] == 1
    with pytest.raises(RotelabError, match="data item 0: field 'label' must be 0 or 1"):
        api.detect(model, [{"text": "w5", "label": 2}], out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


TOY = '''
import contextlib
from rotelab.diffusion.mitigate import Mitigation, register


@register("toy", per_prompt=True)
class Toy(Mitigation):
    """Does nothing: replication after equals replication before."""

    def select(self, model, items, *, run, threshold=0.7, progress=True):
        self.model_fingerprint = model.fingerprint
        self.ids = [it["id"] for it in items if it["label"] == 1]

    def state(self):
        return {"ids": self.ids}

    def restore(self, state, folder):
        self.ids = state["ids"]
'''


def test_a_mitigation_is_one_module_and_its_decorator(tmp_path, monkeypatch, tiny_testbed, few_items):
    from rotelab.diffusion.mitigate import MITIGATIONS

    (tmp_path / "toy_mitigation.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    import toy_mitigation  # noqa: F401

    try:
        tb = str(tiny_testbed[0])
        res = runner.invoke(app, ["mitigate", "--model", tb, "--method", "toy", "--n-seeds", "1", "--out", str(tmp_path / "toy"), "--json", "-q"])
        assert res.exit_code == 0, res.output
        out = json.loads(res.stdout)
        assert out["method"] == "toy" and out["after"] == out["before"], "a mitigation that changes nothing changes no generation"
        res = runner.invoke(app, ["dori", "--model", tb, "--data", str(few_items), "--mitigation", str(tmp_path / "toy"), "--steps", "1", "--n-seeds", "1",
                                  "--out", str(tmp_path / "dori"), "--json", "-q"])
        assert res.exit_code == 0 and json.loads(res.stdout)["mitigated"] == "toy", res.output
    finally:
        MITIGATIONS.unregister("toy")


def test_dori_refuses_a_mitigation_of_another_model_and_one_that_is_not_per_prompt(tmp_path, tiny, few_items):
    from rotelab.diffusion.mitigations.adversarial import Adversarial
    from rotelab.diffusion.mitigations.nemo import NeMo

    model = tiny[0]
    nemo = NeMo()
    nemo.model_fingerprint = "another-model"
    with pytest.raises(RotelabError, match="computed on another model"):
        api.dori(model, few_items, mitigation=nemo, out=tmp_path / "a", progress=False)
    with pytest.raises(RotelabError, match="not applied per prompt; pass its run folder as --model"):
        api.dori(model, few_items, mitigation=Adversarial(pruning=NeMo()), out=tmp_path / "b", progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_every_option_has_help_and_method_choices_come_from_the_registry():
    import click
    import typer.main

    from rotelab.diffusion.mitigate import MITIGATIONS

    group = typer.main.get_command(app)
    commands = [(n, c) for n, c in group.commands.items() if not isinstance(c, click.Group)] + \
               [(f"testbed {n}", c) for n, c in group.commands["testbed"].commands.items()]
    for name, cmd in commands:
        for p in cmd.params:
            assert getattr(p, "help", None), f"diffusion {name} {p.opts} has no help"
    mitigate_help = next(p.help for p in group.commands["mitigate"].params if "--method" in p.opts)
    assert all(n in mitigate_help for n in MITIGATIONS.names())
