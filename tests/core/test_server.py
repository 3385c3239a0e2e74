"""The query-only server backend and its conformance check, against a local stand-in server
(the real vLLM server is exercised in tests/server, in the serial stage of `make test`)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from rotelab.core.access import Access
from rotelab.core.server import ServerOptions, check_server, connect, public_url
from rotelab.core.signals import compute_signals
from rotelab.errors import RotelabError

from .standin_server import StandIn

TEXTS = ["the quick fox jumps over the lazy dog number 3", "the old owl sleeps, and then it sleeps"]


def test_urls_are_recorded_without_credentials():
    assert public_url("https://u:p@h.example:8443/v1/?token=x#f") == "https://h.example:8443/v1"


def test_server_signals_equal_the_local_model(gpt2_lm, arch_dirs):
    with StandIn(gpt2_lm, name="m") as url:
        lm = connect(ServerOptions(url, "m", concurrency=2, batch=1), arch_dirs["gpt2"], moments="full", reference=gpt2_lm)
        assert lm.report["max_abs_diff_vs_local"] < 1e-4 and lm.report["top_logprobs"] == 20 and lm.report["full_distribution"]
        got = compute_signals(lm, TEXTS, progress=False)
    want = compute_signals(gpt2_lm, TEXTS, progress=False)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.logp, b.logp, atol=1e-4)
        np.testing.assert_allclose(a.mu, b.mu, atol=1e-4)
        np.testing.assert_allclose(a.sigma, b.sigma, atol=1e-4)
        assert (a.top1 == b.top1).all() and (a.token_ids == b.token_ids).all()
    assert lm.access == frozenset({Access.LOGPROBS, Access.TOPK, Access.DISTRIBUTION})


def test_logprobs_only_moments_are_nan_and_refuse_distribution_methods(gpt2_lm, arch_dirs):
    with StandIn(gpt2_lm, name="m") as url:
        lm = connect(ServerOptions(url, "m"), arch_dirs["gpt2"])
        s = compute_signals(lm, TEXTS[:1], progress=False)[0]
        assert np.isnan(s.mu).all() and np.isfinite(s.logp).all()
        assert Access.DISTRIBUTION not in lm.access
        with pytest.raises(RotelabError, match="needs hidden access, which the server backend does not offer"):
            lm.require(Access.HIDDEN, method="steering")
        assert lm.cache_namespace != connect(ServerOptions(url, "m"), arch_dirs["gpt2"], moments="full").cache_namespace


def test_topk_moments_are_an_approximation_with_measurable_error(gpt2_lm, arch_dirs):
    with StandIn(gpt2_lm, name="m") as url:
        lm = connect(ServerOptions(url, "m"), arch_dirs["gpt2"], moments="topk")
        a = compute_signals(lm, TEXTS, progress=False, cache=None)
    b = compute_signals(gpt2_lm, TEXTS, progress=False)
    err = max(float(np.abs(x.mu - y.mu).max()) for x, y in zip(a, b))
    assert 0 < err < 5  # an approximation, not the exact value; bench/server.py reports it on the testbed


def test_a_server_without_prompt_logprobs_is_refused(gpt2_lm, arch_dirs):
    with StandIn(gpt2_lm, name="m", mode="no_logprobs") as url:
        with pytest.raises(RotelabError, match="returned no prompt log-probs; rotelab cannot audit through it"):
            connect(ServerOptions(url, "m"), arch_dirs["gpt2"])


def test_a_stale_prefix_cache_is_refused(gpt2_lm, arch_dirs):
    with StandIn(gpt2_lm, name="m", mode="stale") as url:
        with pytest.raises(RotelabError, match="the same request twice gives log-probs .* apart"):
            connect(ServerOptions(url, "m"), arch_dirs["gpt2"])


def test_another_tokenizer_is_refused_naming_the_first_mismatching_text(arch_dirs, tmp_path):
    from rotelab.core.models import load_model

    from .test_models import _gpt2_dir, _tokenizer

    other = load_model(_gpt2_dir(tmp_path, _tokenizer(vocab_size=280, bos=False)))
    with StandIn(other, name="m") as url:
        with pytest.raises(RotelabError, match=r"its tokenizer splits 'The quick brown fox jumps over the lazy dog.' differently from the local one"):
            check_server(ServerOptions(url, "m"), load_model(arch_dirs["gpt2"]).tokenizer)


def test_wrong_model_name_and_unreachable_server_are_one_line(gpt2_lm, arch_dirs):
    with StandIn(gpt2_lm, name="served") as url:
        with pytest.raises(RotelabError, match=r"serves served, not 'other' \(--server-model\)"):
            connect(ServerOptions(url, "other"), arch_dirs["gpt2"])
    with pytest.raises(RotelabError, match=r"http://127.0.0.1:9/v1/models: no answer"):
        connect(ServerOptions("http://127.0.0.1:9", "m", retries=0, timeout=2), arch_dirs["gpt2"])
    with pytest.raises(RotelabError, match="--server must be an http"):
        ServerOptions("ftp://x", "m").validate()


def test_server_check_command_prints_one_json_document(gpt2_lm, arch_dirs):
    with StandIn(gpt2_lm, name="m") as url:
        r = subprocess.run([sys.executable, "-m", "rotelab.cli", "server", "check", url, "--server-model", "m", "--model", str(arch_dirs["gpt2"]), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["prompt_logprobs"] and rep["tokenizer_matches"] and rep["top_logprobs"] == 20 and "secret" not in r.stdout


def test_an_api_key_is_sent_from_the_environment_and_never_recorded(gpt2_lm, arch_dirs, monkeypatch, tmp_path):
    from rotelab.core.runs import open_run

    monkeypatch.setenv("ROTELAB_API_KEY", "sk-secret-123")
    with StandIn(gpt2_lm, name="m") as url:
        lm = connect(ServerOptions(url.replace("http://", "http://user:pw@"), "m"), arch_dirs["gpt2"])
        assert lm.client.session.headers["Authorization"] == "Bearer sk-secret-123"
        with open_run(tmp_path / "r", "x", {}, models={"model": lm}):
            pass
    text = (tmp_path / "r" / "manifest.json").read_text()
    assert "sk-secret" not in text and "user:pw" not in text and json.loads(text)["models"]["model"]["server"] == url
