"""Issue 17 for recsys: no pickles read back, one JSON document with --json, bad data refused before
any run folder, resume only from work on the same data and options."""

import json
import os
import pickle
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from rotelab.errors import RotelabError
from rotelab.recsys.cli import app

runner = CliRunner()
SMALL = ["--epochs", "1", "--downstream-epochs", "0", "--dim", "8", "--summary-tokens", "4"]


def _ok(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, (r.output, r.exception)
    return r


def _refused(args, message):
    r = runner.invoke(app, args)
    assert isinstance(r.exception, RotelabError), (r.output, r.exception)
    assert message in str(r.exception) and "\n" not in str(r.exception)
    return str(r.exception)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel") / "data"
    _ok(["synth", "--out", str(d), "--users", "10", "--items", "120", "--clusters", "8", "--min-len", "560", "--max-len", "600", "--lifelong", "1200", "--quiet"])
    return d


class _Marker:
    """A pickle whose loading creates a file: what a crafted ``model.pt`` would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def _evil(path, marker):
    path.write_bytes(pickle.dumps({"config": _Marker(marker), "state": {}}))


def test_a_pickle_is_never_loaded_as_a_model(tmp_path):
    from rotelab.recsys.serve import load_model

    _evil(tmp_path / "model.pt", tmp_path / "marker")
    with pytest.raises(RotelabError, match=r"model.pt: not a rotelab recsys model .*pickles are never loaded") as e:
        load_model(tmp_path / "model.pt")
    assert "\n" not in str(e.value) and not (tmp_path / "marker").exists()


def test_a_crafted_model_pt_in_a_finished_run_is_never_loaded_on_resume(data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--model", "recent", "--out", str(out), *SMALL, "--quiet"]
    _ok(args)
    (out / "model.safetensors").unlink()
    _evil(out / "model.pt", tmp_path / "marker")
    _refused(args, "model.safetensors: model file not found (model.pt beside it is a pickle from an earlier rotelab and is never loaded")
    assert not (tmp_path / "marker").exists()
    # a run folder as an earlier rotelab left it (no identity in its manifest): refused, or recomputed
    m = json.loads((out / "manifest.json").read_text())
    del m["identity"]
    (out / "manifest.json").write_text(json.dumps(m))
    _refused(args, "written by a rotelab without input hashes")
    _ok([*args, "--overwrite"])
    assert (out / "model.safetensors").exists() and not (out / "model.pt").exists() and not (tmp_path / "marker").exists()


def test_json_is_exactly_one_document_with_progress_bars_on(data, tmp_path):
    """``--json`` without ``--quiet``: progress goes to stderr, stdout parses as one JSON document."""
    r = _ok(["synth", "--out", str(tmp_path / "s"), "--users", "4", "--items", "60", "--clusters", "6", "--min-len", "560", "--max-len", "570", "--lifelong", "", "--json"])
    assert json.loads(r.stdout)["n_users"] == 4
    r = _ok(["train", "--data", str(data), "--model", "vista", "--out", str(tmp_path / "t"), *SMALL, "--json"])
    assert json.loads(r.stdout)["model"] == "vista"


def test_bench_json_is_exactly_one_document(tmp_path, monkeypatch):
    """The defect as reported: ``recsys bench --json`` printed its progress bars before the JSON."""
    import rotelab.recsys.cli as cli
    from rotelab.recsys.config import BenchConfig
    from tests.recsys.conftest import MICRO

    micro = BenchConfig(synth=replace(MICRO, n_users=6, n_items=100, n_clusters=8, lifelong_lens=(600, 1500)),
                        train=replace(BenchConfig().train, d=8, n_seeds=4, epochs=1, downstream_epochs=1, max_len=512, n_neg=8, n_eval_neg=20),
                        stale_events=(256,), n_cand=10, serve_min_time_s=0.02, isolate=False)
    monkeypatch.setattr(cli, "_BENCH", micro)
    r = _ok(["bench", "--out", str(tmp_path / "b"), "--users", "6", "--epochs", "1", "--lengths", "600,1500", "--min-time", "0.02", "--json"])
    res = json.loads(r.stdout)
    assert {row["serving"] for row in res["fallback"]} >= {"VISTA, no summary (cold user)", "recent-only model"}
    cold = [row for row in res["serving"] if row["cold_requests"]]
    assert len(cold) == 1 and cold[0]["cold_requests"] == cold[0]["n_requests"]  # the cold request path, counted


@pytest.mark.parametrize("content, message", [
    ("user_id,video_id,time_ms,is_click,is_like,is_follow,is_comment,is_forward\n1,2,3,1,0,0,0,0\n1,x,4,1,0,0,0,0\n", "column 'video_id': 'x' in data row 2 is not a number"),
    ("user_id,video_id,time_ms,is_click,is_like,is_follow,is_comment,is_forward\n1,2,3,1,0,0,0,0\n1,2,3,4\n", "cannot parse (CSV parse error: Expected 8 columns, got 4"),
    ("user_id,video_id,time_ms,is_click,is_like,is_follow,is_comment,is_forward\n1,2,3,1,0,0,0,0\n1,,4,1,0,0,0,0\n", "column 'video_id' has 1 empty values (first in data row 2)"),
    ("user_id,video_id,time_ms,is_click,is_like,is_follow,is_comment,is_forward\n", "no events"),
    ("user_id,video_id,time_ms,is_click,is_like,is_follow,is_comment,is_forward\n" + "".join(f"1,{i},{i},1,0,0,0,0\n" for i in range(40)),
     "1 users have more than --candidates + 1 = 17 events; need >= 2"),
])
def test_bad_logs_are_one_line_before_any_run_folder(tmp_path, content, message):
    (tmp_path / "log_standard_x.csv").write_text(content)
    _refused(["train", "--data", str(tmp_path), "--out", str(tmp_path / "never"), *SMALL], message)
    assert not (tmp_path / "never").exists()


def test_rerun_on_other_data_or_options_is_refused_or_recomputed(data, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--model", "recent", "--out", str(out), *SMALL, "--quiet", "--json"]
    first = json.loads(_ok([*args, "--data", str(data)]).stdout)
    other = tmp_path / "other"
    _ok(["synth", "--out", str(other), "--users", "10", "--items", "120", "--clusters", "8", "--min-len", "560", "--max-len", "600", "--lifelong", "1200", "--seed", "1", "--quiet"])
    _refused([*args, "--data", str(other)], "its results were computed from other inputs (data changed)")
    _refused([*args, "--data", str(data), "--candidates", "8"], "its results were computed from other options (k: 16 -> 8)")
    again = json.loads(_ok([*args, "--data", str(data)]).stdout)  # same data and options: resumed
    assert again == first
    recomputed = json.loads(_ok([*args, "--data", str(other), "--overwrite"]).stdout)
    assert recomputed["hr@10"] != first["hr@10"] or recomputed["tasks"] != first["tasks"]


def test_api_validates_before_the_run_folder(tmp_path):
    from rotelab.recsys import api
    from rotelab.recsys.config import SynthConfig, TrainConfig

    with pytest.raises(RotelabError, match="--dim must be a positive multiple of the 2 attention heads; got 7"):
        api.train(tmp_path, out=tmp_path / "never", config=TrainConfig(d=7))
    with pytest.raises(RotelabError, match="--clusters must be >= 5 and <= --items"):
        api.synth(out=tmp_path / "never", config=SynthConfig(n_clusters=3))
    assert not (tmp_path / "never").exists()
