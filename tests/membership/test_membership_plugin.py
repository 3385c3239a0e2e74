"""A new multi-pass attack is one module: its decorator is its only registry line, and the API,
the command and ``rotelab mia attacks`` pick it up."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from rotelab.core.data import write_jsonl
from rotelab.core.models import load_model
from rotelab.core.runs import read_parquet
from rotelab.membership.api import mia
from rotelab.membership.attacks import ATTACKS
from rotelab.membership.cli import mia_app

PLUGIN = '''
"""Echo: how much a text gains from having been read once in context (a test plug-in)."""

import numpy as np

from rotelab.membership.attacks import register_attack


@register_attack("echo", order=200)
def echo(ctx):
    """NLL(x) - NLL(x | x): the loss drop when the text is read a second time; one extra pass."""
    bos = len(ctx.lm.bos_ids)
    seqs = [s.token_ids.tolist() + s.token_ids[bos:].tolist() for s in ctx.signals]
    lp = ctx.logp_pass("echo", seqs)
    return np.array([s.nll + float(x[-(len(s.token_ids) - 1):].mean()) for s, x in zip(ctx.signals, lp)])
'''


@pytest.fixture()
def echo_attack(tmp_path):
    (tmp_path / "rotelab_echo.py").write_text(PLUGIN)
    spec = importlib.util.spec_from_file_location("rotelab_echo", tmp_path / "rotelab_echo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["rotelab_echo"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        ATTACKS.unregister("echo")
        sys.modules.pop("rotelab_echo", None)


def _by_hand(lm, texts):
    """The same score from the model's log-probs, one text at a time."""
    out = []
    for ids in lm.tokenize(texts):
        nll = -lm.forward_logp([ids])[0].mean()
        twice = lm.forward_logp([ids + ids[len(lm.bos_ids):]])[0]
        out.append(nll + twice[-(len(ids) - 1):].mean())
    return np.array(out)


def test_a_new_attack_module_runs_through_the_api_and_the_command(echo_attack, arch_dirs, tmp_path):
    assert ATTACKS["echo"].doc.startswith("NLL(x) - NLL(x | x)") and not ATTACKS["echo"].single_pass
    write_jsonl(tmp_path / "m.jsonl", [{"text": f"the quick fox jumps over the lazy dog number {i}, and then it sleeps."} for i in range(6)])
    write_jsonl(tmp_path / "n.jsonl", [{"text": f"the old owl jumps over the red hen number {i}."} for i in range(6)])
    lm = load_model(arch_dirs["gpt2"])
    m = mia(lm, tmp_path / "m.jsonl", tmp_path / "n.jsonl", attacks="echo,loss", out=tmp_path / "api", cache=None, progress=False)
    assert set(m) == {"echo", "loss", "bag_of_words"}
    texts = [json.loads(x)["text"] for f in ("m.jsonl", "n.jsonl") for x in (tmp_path / f).read_text().splitlines()]
    scores = read_parquet(tmp_path / "api" / "scores.parquet")["echo"]
    assert np.allclose(scores, _by_hand(lm, texts), atol=1e-5)

    r = CliRunner().invoke(mia_app, ["run", "--model", str(arch_dirs["gpt2"]), "--members", str(tmp_path / "m.jsonl"), "--nonmembers", str(tmp_path / "n.jsonl"),
                                     "--attacks", "echo", "--out", str(tmp_path / "cli"), "--json", "--no-cache", "-q"])
    assert r.exit_code == 0, r.output
    assert np.allclose(read_parquet(tmp_path / "cli" / "scores.parquet")["echo"], scores, atol=1e-6)
    listed = CliRunner().invoke(mia_app, ["attacks", "--json"])
    assert "echo" in [x["name"] for x in json.loads(listed.stdout)]


def test_the_registry_refuses_clashes_unknown_resources_and_undocumented_attacks():
    from rotelab.membership.attacks import register_attack

    def other(ctx):
        """Another loss."""

    with pytest.raises(ValueError, match="registered twice"):
        register_attack("loss")(other)
    with pytest.raises(ValueError, match="unknown resource 'gpu'"):
        register_attack("x", requires=("gpu",))
    with pytest.raises(ValueError, match="needs a docstring"):
        register_attack("y")(lambda ctx: None)
    with pytest.raises(ValueError, match="lower-case"):
        register_attack("../evil")
    assert "x" not in ATTACKS and "y" not in ATTACKS
