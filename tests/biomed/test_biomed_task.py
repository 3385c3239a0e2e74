import numpy as np
import pytest

from rotelab.biomed.sources import Entry, load_synthetic
from rotelab.biomed.task import TaskConfig, assign_bins, balanced_sample, bin_edges, build_pairs, prompt, read_task
from rotelab.errors import RotelabError


def test_every_bin_is_sampled_equally_and_split_in_the_same_share():
    arms, _ = load_synthetic(2000, seed=0)
    cfg = TaskConfig(n_per_bin=60, n_bins=3, val_share=1 / 3, seed=3)
    cols, bins = build_pairs(arms, cfg)
    arm, split, b = np.array(cols["arm"]), np.array(cols["split"]), np.array(cols["bin"])
    one = arm == "derived"
    assert len(bins["ranges"]) == 3
    for k in range(3):
        assert ((b == k) & one & (split == "train")).sum() == 40 and ((b == k) & one & (split == "validation")).sum() == 20
    pop = np.array(cols["popularity"])
    assert abs(np.median(pop[one & (split == "train")]) - np.median(pop[one & (split == "validation")])) <= 2
    # the arms share the split: a validation concept is unseen under both identifiers
    key_split = {(k, s) for k, s, a in zip(cols["key"], cols["split"], cols["arm"]) if a == "arbitrary"}
    assert key_split == {(k, s) for k, s, a in zip(cols["key"], cols["split"], cols["arm"]) if a == "derived"}


def test_bins_keep_ties_together_and_small_bins_are_taken_whole():
    pop = np.array([0, 0, 0, 0, 1, 2, 5, 9])
    edges = bin_edges(pop, 4)
    assert edges.tolist() == [0.5, 2.75]
    assert assign_bins(pop, edges).tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    split = balanced_sample([str(i) for i in range(8)], assign_bins(pop, edges), TaskConfig(n_per_bin=3, val_share=0.5))
    assert len(split) == 3 + 2 + 2 and sum(v == "validation" for v in split.values()) == 2 + 1 + 1


def test_both_directions_ask_term_to_id_and_id_to_term_with_synonyms(tmp_path):
    from rotelab.biomed.task import write_task
    from rotelab.core.runs import open_run

    arms = {"hpo": [Entry(f"HP:{i:07d}", f"Term {i}", f"HP:{i:07d}", (f"Alias {i}",), float(i % 5)) for i in range(30)]}
    with open_run(tmp_path / "t", "biomed build-task", {}) as run:
        write_task(run, "hpo", arms, TaskConfig(n_per_bin=30, n_bins=2), {"source": "test"})
    task = read_task(tmp_path / "t")
    items = task.items()
    fwd = [i for i in items if i.direction == "forward"]
    rev = [i for i in items if i.direction == "reverse"]
    assert len(fwd) == len(rev) == len(task.pairs["key"])
    f = next(i for i in fwd if i.key == "HP:0000007")
    r = next(i for i in rev if i.key == "HP:0000007")
    assert (f.prompt, f.gold, f.accepted) == ("HPO> Term 7 =", "HP:0000007", ("HP:0000007",))
    assert (r.prompt, r.gold, r.accepted) == ("HPO< HP:0000007 =", "Term 7", ("Term 7", "Alias 7"))
    assert f.text == "HPO> Term 7 = HP:0000007\n"


def test_a_folder_that_is_no_task_is_refused_in_one_line(tmp_path):
    with pytest.raises(RotelabError, match="not a biomed task folder"):
        read_task(tmp_path)


def test_prompt_marks_the_direction():
    assert prompt("derived", "forward", "mild renal cyst") == "D> mild renal cyst ="
    assert prompt("symbol", "reverse", "APOC3") == "SYM< APOC3 ="
