"""Fixtures of the testbed tests: one unlearning run through the API, shared by the files here."""

import os

import pytest


@pytest.fixture(scope="session")
def unlearn_run(tiny_testbed, tmp_path_factory):
    """GradDiff on the tiny testbed through ``rotelab.testbed.api.unlearn``, written under umask 022
    (what a lab's shared folder uses): its files must come out group- and other-readable."""
    from rotelab.testbed import api

    out = tmp_path_factory.mktemp("unlearn") / "run"
    old = os.umask(0o022)
    try:
        api.unlearn(tiny_testbed, method="graddiff", lr=1e-3, max_steps=60, out=out, progress=False)
    finally:
        os.umask(old)
    return out
