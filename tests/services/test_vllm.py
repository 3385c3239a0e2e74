"""Through a real vLLM server (CPU build), started by .ci/services in the serial stage:
the conformance check, log-probs and Min-K%++ moments equal to local scoring, a second server
with another tokenizer refused. Skipped when no server is running ($ROTELAB_VLLM_URL unset)."""

import os

import numpy as np
import pytest

pytestmark = [pytest.mark.service, pytest.mark.skipif(not os.environ.get("ROTELAB_VLLM_URL"), reason="no vLLM server ($ROTELAB_VLLM_URL): run `make test`, whose serial stage starts one")]

URL, MODEL = os.environ.get("ROTELAB_VLLM_URL", ""), os.environ.get("ROTELAB_VLLM_MODEL", "")
TESTBED = os.environ.get("ROTELAB_VLLM_TESTBED", "")


@pytest.fixture(scope="module")
def local():
    """The served model, read locally with the server's context (max_model_len - 1 = 79 tokens)."""
    from rotelab.core.models import load_model

    return load_model(TESTBED, max_length=79)


@pytest.fixture(scope="module")
def texts():
    from rotelab.core.data import read_jsonl

    return [s.text for s in read_jsonl(f"{TESTBED}/splits/members.jsonl")][:24]


def test_conformance_report_of_a_real_server(local):
    from rotelab.server.api import check

    rep = check(URL, MODEL, TESTBED, reference=local)
    assert rep["prompt_logprobs"] and rep["tokenizer_matches"] and rep["full_distribution"]
    assert rep["top_logprobs"] == 20 and rep["repeat_max_abs_diff"] == 0.0
    assert rep["max_abs_diff_vs_local"] < 1e-4 and rep["max_model_len"] == 80


def test_server_logprobs_and_exact_moments_equal_local(local, texts):
    from rotelab.core.models import LoadOptions
    from rotelab.core.server import ServerOptions
    from rotelab.core.signals import compute_signals

    lm = LoadOptions(server=ServerOptions(URL, MODEL), server_moments="none").load(TESTBED)
    want = compute_signals(local, texts, progress=False)
    got = compute_signals(lm, texts, progress=False)
    assert max(float(np.abs(a.logp - b.logp).max()) for a, b in zip(got, want)) < 1e-4
    assert all((a.top1 == b.top1).all() for a, b in zip(got, want))
    full = LoadOptions(server=ServerOptions(URL, MODEL), server_moments="full").load(TESTBED)
    exact = compute_signals(full, texts[:5], progress=False)  # the whole distribution: ~1 MB of JSON per prompt here
    assert max(float(np.abs(a.mu - b.mu).max()) for a, b in zip(exact, want[:5])) < 1e-4


def test_a_server_with_another_tokenizer_is_refused():
    from rotelab.errors import RotelabError
    from rotelab.server.api import check

    with pytest.raises(RotelabError, match="its tokenizer splits .* differently from the local one"):
        check(os.environ["ROTELAB_VLLM_OTHER_URL"], os.environ["ROTELAB_VLLM_OTHER_MODEL"], TESTBED)
