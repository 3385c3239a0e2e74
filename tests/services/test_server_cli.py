"""`rotelab mia run --server` and `rotelab remind run --server` reproduce local scoring through a
real vLLM server (started by .ci/services): AUCs within 1e-3, the manifest names the server
without credentials, and what a server cannot give (GradNorm) is refused naming what remains."""

import json
import os

import pytest
from typer.testing import CliRunner

from rotelab.core.data import read_jsonl, write_jsonl
from rotelab.membership.cli import mia_app, remind_app

pytestmark = [pytest.mark.service, pytest.mark.skipif(not os.environ.get("ROTELAB_VLLM_URL"), reason="no vLLM server ($ROTELAB_VLLM_URL): run `make test`")]

URL, MODEL = os.environ.get("ROTELAB_VLLM_URL", ""), os.environ.get("ROTELAB_VLLM_MODEL", "")
TESTBED = os.environ.get("ROTELAB_VLLM_TESTBED", "")
runner = CliRunner()
SERVER = ["--server", URL, "--server-model", MODEL, "--max-length", "79"]  # the server takes max_model_len - 1 prompt tokens


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("server_cli")
    sp = f"{TESTBED}/splits"
    rows = lambda name: [{"id": s.id, "text": s.text, **s.meta} for s in read_jsonl(f"{sp}/{name}.jsonl")]  # noqa: E731
    write_jsonl(d / "mem.jsonl", [r for r in rows("members") if r.get("kind") == "book" and r.get("copies", 0) >= 15][:15])
    write_jsonl(d / "non.jsonl", [r for r in rows("nonmembers") if r.get("kind") == "book"][:15])
    for name in ("retain", "forget", "holdout"):
        write_jsonl(d / f"{name}.jsonl", rows(name)[:8])
    return d


def run(app, args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_mia_run_through_the_server_reproduces_local(files, tmp_path):
    common = ["run", "--members", str(files / "mem.jsonl"), "--nonmembers", str(files / "non.jsonl"), "--attacks", "loss,zlib,mink,minkpp",
              "--json", "--no-cache", "-q"]
    local = run(mia_app, common + ["--model", TESTBED, "--max-length", "79", "--out", str(tmp_path / "local")])
    remote = run(mia_app, common + ["--model", f"{TESTBED}/model", *SERVER, "--server-moments", "full", "--out", str(tmp_path / "server")])
    for a in ("loss", "zlib", "mink", "minkpp"):
        assert remote[a]["n_members"] == 15 and abs(remote[a]["auc"] - local[a]["auc"]) < 1e-3, a
    manifest = json.loads((tmp_path / "server" / "manifest.json").read_text())
    assert URL.split("//")[1] in json.dumps(manifest) and "api_key" not in json.dumps(manifest).lower()


def test_an_attack_a_server_cannot_serve_is_refused_naming_what_remains(files, tmp_path):
    from rotelab.cli import app
    from rotelab.errors import RotelabError

    for attack, needs in (("gradnorm", "weights"), ("minkpp", "distribution")):  # Min-K%++ without --server-moments
        r = runner.invoke(app, ["mia", "run", "--model", f"{TESTBED}/model", *SERVER, "--members", str(files / "mem.jsonl"),
                                "--nonmembers", str(files / "non.jsonl"), "--attacks", attack, "--out", str(tmp_path / "g"), "--json"])
        assert isinstance(r.exception, RotelabError), r.output
        msg = str(r.exception)
        assert f"needs {needs} access" in msg and "--attacks loss,zlib,mink," in msg and "minkpp" not in msg.split("still run")[1]
    assert not (tmp_path / "g").exists()


def test_remind_run_through_the_server_reproduces_local(files, tmp_path):
    common = ["run", *(x for n in ("retain", "forget", "holdout") for x in (f"--{n}", str(files / f"{n}.jsonl"))), "--json", "--no-cache", "-q"]
    local = run(remind_app, common + ["--model", TESTBED, "--max-length", "79", "--out", str(tmp_path / "local")])
    remote = run(remind_app, common + ["--model", f"{TESTBED}/model", *SERVER, "--embedding-model", f"{TESTBED}/model", "--out", str(tmp_path / "server")])

    def flat(m, path=""):
        """Every number in metrics.json, by its path."""
        if isinstance(m, dict):
            return {k: v for key, sub in m.items() for k, v in flat(sub, f"{path}/{key}").items()}
        if isinstance(m, list):
            return {k: v for i, sub in enumerate(m) for k, v in flat(sub, f"{path}/{i}").items()}
        return {path: m} if isinstance(m, float) else {}

    missing = {k.split("/")[2] for k in flat(local).keys() - flat(remote).keys()}
    assert flat(remote) and missing <= {"minkpp", "rouge_l"}, missing  # no moments without --server-moments, no generation through a server
    want = flat(local)
    for k, v in flat(remote).items():
        assert abs(want[k] - v) < 1e-3, k
