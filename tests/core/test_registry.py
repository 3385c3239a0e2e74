import pytest

from rotelab.core.registry import Registry
from rotelab.errors import RotelabError


def _reg():
    r = Registry("attack")

    @r.register("loss", needs=1)
    def loss(x):
        return x

    @r.register("minkpp", needs=1)
    def minkpp(x):
        return x

    return r


def test_unknown_name_suggests_the_closest_and_lists_all():
    with pytest.raises(RotelabError) as e:
        _reg().get("minkp", option="--attacks")
    assert str(e.value) == "--attacks: unknown attack 'minkp'. Did you mean: minkpp? Available: loss, minkpp"


def test_a_second_object_under_a_taken_name_is_refused():
    r = _reg()
    with pytest.raises(ValueError, match="attack 'loss' is registered twice"):
        r.register("loss", lambda x: x)


def test_reregistering_the_same_definition_is_harmless():
    r = Registry("x")

    def f():
        pass

    r.register("f", f)
    r.register("f", f)
    assert r.names() == ["f"]


def test_resolve_all_comma_lists_and_empty():
    r = _reg()
    assert r.resolve("all") == ["loss", "minkpp"]
    assert r.resolve(" minkpp, loss,minkpp ") == ["minkpp", "loss"]
    with pytest.raises(RotelabError, match="--attacks is empty"):
        r.resolve(" , ", option="--attacks")


def test_metadata_and_doc_travel_with_the_entry():
    r = Registry("x")

    @r.register("a", order=3)
    def a():
        """First line.

        More."""

    assert r["a"].meta["order"] == 3 and r["a"].doc == "First line."


def test_discovery_runs_once_before_the_first_lookup():
    calls = []
    r = Registry("x", discover=lambda: (calls.append(1), r.register("late", object())))
    assert calls == []
    assert "late" in r and r.names() == ["late"] and calls == [1]


def test_base_class_is_enforced():
    class Base:
        pass

    r = Registry("method", base=Base)
    r.register("ok", type("Ok", (Base,), {}))
    with pytest.raises(TypeError, match="must be a Base"):
        r.register("bad", int)


def test_unregister_removes_a_plugin():
    r = _reg()
    r.unregister("loss")
    assert r.names() == ["minkpp"]
