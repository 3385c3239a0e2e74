"""Nothing a diffusion command reads can run code, and no item id writes outside the run folder.

Each reader gets a crafted pickle (the ``evil`` fixture checks that it really runs code when
unpickled), under the old file name and under the new one.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rotelab.diffusion.cli import app
from rotelab.errors import RotelabError

runner = CliRunner()


def _refused(args, *needles):
    res = runner.invoke(app, args)
    assert isinstance(res.exception, RotelabError), res.output
    msg = str(res.exception)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    return msg


@pytest.mark.parametrize("name", ["mitigation.pt", "mitigation.safetensors"])
@pytest.mark.parametrize("option", ["dori --mitigation", "mitigate --pruning"])
def test_a_crafted_mitigation_file_is_refused_in_one_line_and_never_unpickled(tmp_path, tiny_testbed, few_items, evil, name, option):
    command, flag = option.split()
    folder = tmp_path / "mit"
    evil(folder / name)
    extra = ["--method", "adversarial"] if command == "mitigate" else []
    _refused([command, "--model", str(tiny_testbed[0]), "--data", str(few_items), flag, str(folder), *extra, "--out", str(tmp_path / "run")],
             str(folder), "never loaded" if name.endswith(".pt") else "not a rotelab safetensors record")
    assert not evil.marker.exists()
    assert not (tmp_path / "run").exists(), "refused before the run folder was created"


def test_the_console_entry_point_refuses_a_crafted_mitigation_with_exit_2_and_one_line(tmp_path, tiny_testbed, evil):
    evil(tmp_path / "mit" / "mitigation.pt")
    r = subprocess.run([sys.executable, "-m", "rotelab.cli", "diffusion", "dori", "--model", str(tiny_testbed[0]), "--mitigation", str(tmp_path / "mit"),
                        "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "mitigation.pt" in r.stderr and not evil.marker.exists() and not (tmp_path / "run").exists()


def _locality_args(tb, out):
    # one Adam step from Gaussian starts never replicates: locality stops after its "triggers" step (cheap)
    return ["locality", "--model", str(tb), "--starts", "2", "--steps", "1", "--n-seeds", "1", "--out", str(out), "-q", "--json"]


def test_locality_resume_never_unpickles_triggers_or_selections(tmp_path, tiny_testbed, evil):
    out = tmp_path / "loc"
    args = _locality_args(tiny_testbed[0], out)
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["successful_triggers"] < 2
    assert (out / "triggers.safetensors").exists() and not list(out.glob("*.pt"))
    # an older rotelab's folder: triggers.pt / selections.pt, no safetensors record
    (out / "triggers.safetensors").unlink()
    evil(out / "triggers.pt"), evil(out / "selections.pt")
    _refused(args, "triggers.safetensors", "never loaded")
    assert not evil.marker.exists()
    # a pickle under the new name
    evil(out / "triggers.safetensors")
    _refused(args, "triggers.safetensors", "not a rotelab safetensors record")
    assert not evil.marker.exists()


def test_dori_resume_never_unpickles_its_per_item_records(tmp_path, tiny_testbed, few_items, evil):
    out = tmp_path / "dori"
    args = ["dori", "--model", str(tiny_testbed[0]), "--data", str(few_items), "--steps", "1", "--n-seeds", "1", "--out", str(out), "-q", "--json"]
    assert runner.invoke(app, args).exit_code == 0
    records = sorted((out / "dori").glob("*.safetensors"))
    assert len(records) == 2 and not list((out / "dori").glob("*.pt"))
    for r in records:
        evil(r)
        evil(out / "dori" / f"{r.stem.rsplit('-', 1)[0]}.pt")  # the old dori/{id}.pt name too
    _refused(args, "not a rotelab safetensors record")
    assert not evil.marker.exists()


def test_testbed_training_checkpoint_is_safetensors_and_a_crafted_one_is_never_unpickled(tmp_path, evil):
    from rotelab.core.io import read_json, write_json

    out = tmp_path / "tb"
    args = ["testbed", "build", "--preset", "tiny", "--steps", "2", "--out", str(out), "-q", "--json"]
    assert runner.invoke(app, args).exit_code == 0
    assert not list(out.glob("train_ckpt*")), "the checkpoint is removed when training ends"
    manifest = read_json(out / "manifest.json")

    def killed_during_training():  # as if the process died before the "train" step finished
        write_json(out / "manifest.json", {**manifest, "steps_done": [s for s in manifest["steps_done"] if s != "train"]})

    killed_during_training()
    evil(out / "train_ckpt.pt")  # the old name: ignored, training starts over
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert not evil.marker.exists()
    killed_during_training()
    evil(out / "train_ckpt.safetensors")  # the new name holding a pickle: refused
    _refused(args, "train_ckpt.safetensors", "not a rotelab safetensors record")
    assert not evil.marker.exists()


def test_a_pipeline_with_pickle_weights_only_is_refused(tmp_path, tiny_testbed, evil):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_testbed[0] / "model", model)
    for f in (model / "unet").glob("*.safetensors"):
        f.unlink()
    evil(model / "unet" / "diffusion_pytorch_model.bin")
    _refused(["detect", "--model", str(model), "--data", str(tiny_testbed[0] / "items.jsonl"), "--out", str(tmp_path / "run")],
             "no safetensors weights", "unet")
    assert not evil.marker.exists() and not (tmp_path / "run").exists()


def test_item_ids_never_name_a_file_outside_the_run_folder(tmp_path, tiny_testbed):
    rows = [json.loads(line) for line in (tiny_testbed[0] / "items.jsonl").read_text().splitlines()]
    ids = ["../../../escape", "/tmp/abs-escape", "..", "odd id *?:<>|\\ \u00e9 ."]
    data = tmp_path / "hostile.jsonl"
    data.write_text("".join(json.dumps({**r, "id": i, "image": str(tiny_testbed[0] / r["image"])}) + "\n" for i, r in zip(ids, rows)))
    work = tmp_path / "work"
    out = work / "a" / "b" / "run"
    before = {p for p in tmp_path.rglob("*")}
    res = runner.invoke(app, ["dori", "--model", str(tiny_testbed[0]), "--data", str(data), "--steps", "1", "--n-seeds", "1", "--out", str(out), "-q", "--json"])
    assert res.exit_code == 0, res.output
    assert set(json.loads(res.stdout)["per_image"]) == set(ids)
    created = {p for p in tmp_path.rglob("*")} - before
    assert all(p == out or out in p.parents or p in out.parents for p in created), sorted(map(str, created))
    assert len(list((out / "dori").glob("*.safetensors"))) == len(ids) == len(list((out / "dori").glob("*.json")))
    assert not list(tmp_path.glob("escape*")) and not list(Path("/tmp").glob("abs-escape*"))
