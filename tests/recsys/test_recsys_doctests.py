import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["rotelab.recsys.cache", "rotelab.recsys.metrics"])
def test_recsys_docstring_examples(name):
    res = doctest.testmod(importlib.import_module(name))
    assert res.attempted > 0 and res.failed == 0
