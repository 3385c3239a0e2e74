"""Run-folder safety: --out checks, the lock, resume only from the same inputs and options."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from rotelab.core.runs import LOCK_NAME, RunFolder, open_run
from rotelab.errors import RotelabError


def test_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(RotelabError) as e:
        RunFolder(f, command="x", options={})
    assert str(e.value) == f"{f}: exists and is a file; --out must be a folder"


def test_out_under_a_regular_file_is_one_line(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")  # root ignores permission bits: a path under a regular file fails for everyone
    with pytest.raises(RotelabError, match=r"cannot write the run folder \(Not a directory\)"):
        RunFolder(f / "run", command="x", options={})


def test_non_empty_folder_that_is_no_run_folder_is_refused_and_left_alone(tmp_path):
    (tmp_path / "report.html").write_text("my own report")
    with pytest.raises(RotelabError, match="not a rotelab run folder and not empty"):
        RunFolder(tmp_path, command="x", options={})
    assert (tmp_path / "report.html").read_text() == "my own report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_a_folder_holding_only_sub_runs_is_accepted(tmp_path):
    with RunFolder(tmp_path / "testbed", command="testbed build", options={}):
        pass
    with RunFolder(tmp_path, command="demo", options={}) as run:
        assert run.manifest["command"] == "demo"


def test_changed_options_are_refused_then_recomputed_with_overwrite(tmp_path):
    with RunFolder(tmp_path, command="x", options={"k": 0.2, "batch_size": 8}, volatile=("batch_size",)) as run:
        run.step("a", lambda: run.write_json("a.json", 1))
    with RunFolder(tmp_path, command="x", options={"k": 0.2, "batch_size": 64}, volatile=("batch_size",)) as run:
        assert run.is_done("a")  # batch size does not change a result
    with pytest.raises(RotelabError) as e:
        RunFolder(tmp_path, command="x", options={"k": 0.3})
    assert "its results were computed from other options (k: 0.2 -> 0.3)" in str(e.value) and "--overwrite" in str(e.value)
    with RunFolder(tmp_path, command="x", options={"k": 0.3}, overwrite=True) as run:
        assert not run.is_done("a") and not (tmp_path / "a.json").exists()


def test_changed_seed_is_refused(tmp_path):
    with RunFolder(tmp_path, command="x", options={}, seed=0) as run:
        run.step("a", lambda: None)
    with pytest.raises(RotelabError, match="seed: 0 -> 1"):
        RunFolder(tmp_path, command="x", options={}, seed=1)


def test_changed_input_file_is_refused_before_anything_is_overwritten(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "a"}\n')
    out = tmp_path / "run"
    with open_run(out, "x", {}, inputs={"data": data}) as run:
        run.step("scores", lambda: run.write_json("scores.json", [1]))
    data.write_text('{"text": "b"}\n')
    with pytest.raises(RotelabError, match=r"computed from other inputs \(data changed\)"):
        open_run(out, "x", {}, inputs={"data": data})
    assert json.loads((out / "scores.json").read_text()) == [1]
    with open_run(out, "x", {}, inputs={"data": data}, overwrite=True) as run:
        assert not run.is_done("scores") and not (out / "scores.json").exists()
        assert run.manifest["inputs"]["data"]["sha256"]


def test_changed_model_is_refused(tmp_path):
    with open_run(tmp_path, "x", {}, models={"model": "aaa"}) as run:
        run.step("s", lambda: None)
    with pytest.raises(RotelabError, match=r"other models \(model changed\)"):
        open_run(tmp_path, "x", {}, models={"model": "bbb"})


def test_same_inputs_resume(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("x")
    with open_run(tmp_path / "r", "x", {"k": 1}, seed=3, inputs={"data": data}, models={"m": "f"}) as run:
        run.step("a", lambda: None)
    with open_run(tmp_path / "r", "x", {"k": 1}, seed=3, inputs={"data": data}, models={"m": "f"}) as run:
        assert run.is_done("a")


def test_second_process_gets_one_line_naming_the_holder(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from rotelab.core.runs import RunFolder
            run = RunFolder({str(tmp_path)!r}, command="mia run", options={{}})
            print("locked", flush=True)
            time.sleep(30)
        """)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RotelabError) as e:
            RunFolder(tmp_path, command="mia run", options={})
        msg = str(e.value)
        assert msg.startswith(f"{tmp_path}: in use by pid {holder.pid} on ") and "('mia run', since" in msg and "\n" not in msg
    finally:
        holder.kill()
        holder.wait()
    with RunFolder(tmp_path, command="mia run", options={}):  # released when the holder died
        pass


def test_lock_is_reentrant_within_a_process_and_released_on_close(tmp_path):
    a = RunFolder(tmp_path, command="x", options={})
    b = RunFolder(tmp_path, command="x", options={})  # e.g. the CLI reopening the demo folder
    b.close()
    a.close()
    assert (tmp_path / LOCK_NAME).read_text() == ""


def test_results_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with RunFolder(tmp_path / "r", command="x", options={}) as run:
            p = run.write_json("a.json", {})
        assert oct(p.stat().st_mode & 0o777) == "0o644"
    finally:
        os.umask(old)
