"""Session fixtures for the diffusion tests: one tiny testbed (8x8 images) trained once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_testbed(tmp_path_factory):
    """The ``tiny`` preset: 3 memorized pairs x16, 8 singletons, 6 unseen; 300 steps."""
    import torch

    from rotelab.diffusion.testbed import PRESETS, build_testbed

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on the shared 2-core machine 2 threads ran ~30x slower than 1
    out = tmp_path_factory.mktemp("diffusion_tiny")
    summary = build_testbed(out, PRESETS["tiny"], progress=False)
    torch.set_num_threads(threads)
    return out, summary


@pytest.fixture(scope="session")
def tiny(tiny_testbed):
    """(model, items, pixels, x0, embeddings) of the tiny testbed."""
    from rotelab.diffusion.evaluate import item_tensors
    from rotelab.diffusion.model import DiffusionModel
    from rotelab.diffusion.testbed import read_items

    model = DiffusionModel.load(tiny_testbed[0])
    items = read_items(tiny_testbed[0])
    pix, x0, ys = item_tensors(model, items)
    return model, items, pix, x0, ys


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread in these tests only: on a shared, busy 2-core CPU two threads ran ~30x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class _Boom:
    """Unpickling this creates ``marker``: a stand-in for a pickle that runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture()
def evil(tmp_path):
    """``write(path)`` puts a crafted pickle (torch.save format) at ``path``; ``marker`` is the file
    it creates when unpickled. The fixture checks that the file really is dangerous."""
    import torch

    marker = tmp_path / "PWNED"

    def write(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"x": _Boom(marker)}, path)
        return path

    probe = write(tmp_path / "probe.pt")
    torch.load(probe, weights_only=False)  # the old readers did this
    assert marker.exists(), "the crafted file must run code when unpickled, or the tests below prove nothing"
    marker.unlink()
    probe.unlink()
    write.marker = marker
    return write


@pytest.fixture(scope="session")
def few_items(tiny_testbed, tmp_path_factory):
    """A JSONL of one memorized and one unseen testbed item (absolute image paths): cheap runs."""
    import json

    rows = [json.loads(line) for line in (tiny_testbed[0] / "items.jsonl").read_text().splitlines()]
    picked = [r for r in rows if r["split"] == "memorized"][:1] + [r for r in rows if r["split"] == "unseen"][:1]
    p = tmp_path_factory.mktemp("few") / "two.jsonl"
    p.write_text("".join(json.dumps({**r, "image": str(tiny_testbed[0] / r["image"])}) + "\n" for r in picked))
    return p
