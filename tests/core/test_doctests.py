import doctest
import importlib

import pytest

MODULES = ["rotelab.core.stats", "rotelab.core.similarity", "rotelab.core.data"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    res = doctest.testmod(importlib.import_module(name))
    assert res.attempted > 0 and res.failed == 0
