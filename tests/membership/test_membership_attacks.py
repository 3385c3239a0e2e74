"""Registry-wide: every attack separates members from non-members on the memorized tiny testbed.

Attacks read book passages seen >= 15 times against non-member passages; attacks that only
generate (SaMIA) read facts seen 20 times against facts of never-trained people: sampling at
temperature 1, the tiny model recites a fact's answer but not the second half of an 80-token
passage (its AUC on passages is 0.5), so passages would test the model, not the attack."""

from __future__ import annotations

import numpy as np
import pytest

from rotelab.core.access import Access
from rotelab.core.models import LogprobsOnlyModel, load_model
from rotelab.core.stats import roc_auc
from rotelab.errors import RotelabError
from rotelab.membership.attacks import ATTACKS
from rotelab.membership.context import AttackContext, MIAConfig
from rotelab.core.signals import compute_signals


def _context(lm, tiny_testbed, tiny_splits, kind: str, copies: int, n: int = 24) -> tuple[AttackContext, np.ndarray]:
    members = [r["text"] for r in tiny_splits["members"] if r["kind"] == kind and r["copies"] >= copies]
    mem, member_pool = members[:n], members[n:]  # Con-ReCaLL's member shots: members never scored
    others = [r["text"] for r in tiny_splits["nonmembers"] if r["kind"] == kind]
    non, corpus = others[:n], others[n:] + [r["text"] for r in tiny_splits["prefix_pool"]]  # DC-PDD: unscored non-member text
    texts = mem + non
    ctx = AttackContext(
        lm, texts, compute_signals(lm, texts, progress=False), MIAConfig(n_neighbours=4),
        reference=load_model(tiny_testbed / "reference"), prefix_texts=[r["text"] for r in tiny_splits["prefix_pool"]],
        member_prefix_texts=member_pool, frequency_texts=corpus,
    )
    return ctx, np.array([1] * len(mem) + [0] * len(non))


@pytest.fixture(scope="module")
def setup(tiny_testbed, tiny_splits):
    lm = load_model(tiny_testbed)
    ctx, labels = _context(lm, tiny_testbed, tiny_splits, "book", 15)
    return lm, ctx, labels


@pytest.fixture(scope="module")
def facts(tiny_testbed, tiny_splits, setup):
    return _context(setup[0], tiny_testbed, tiny_splits, "fact", 20)


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_attack_separates_memorized_members(setup, facts, attack):
    ctx, labels = facts if ATTACKS[attack].needs == Access.GENERATION else setup[1:]
    s = ATTACKS[attack].run(ctx)
    assert s.shape == labels.shape and np.isfinite(s).all()
    assert roc_auc(s, labels) > 0.6, f"{attack}: AUC {roc_auc(s, labels):.3f}"


def test_query_only_backend_refuses_gradnorm(setup):
    from rotelab.membership.suite import check_access

    lm, _, _ = setup
    with pytest.raises(RotelabError, match="gradnorm.*weights access.*log-probs-only"):
        check_access(LogprobsOnlyModel(lm), ["loss", "gradnorm"])
    check_access(LogprobsOnlyModel(lm), ["loss", "zlib", "mink", "minkpp", "lowercase", "recall"])


def test_reference_with_another_tokenizer_is_refused(setup, gpt2_lm):
    lm, ctx, _ = setup
    other = AttackContext(lm, ctx.texts[:2], ctx.signals[:2], reference=gpt2_lm)
    with pytest.raises(RotelabError, match="tokenizer"):
        ATTACKS["reference"].run(other)


def test_single_pass_attacks_need_no_model_pass(setup):
    _, ctx, labels = setup

    class NoModel:
        def __getattr__(self, name):
            raise AssertionError(f"single-pass attack touched the model ({name})")

    bare = AttackContext(NoModel(), ctx.texts, ctx.signals, ctx.config)
    for a in (a for a in ATTACKS.values() if a.single_pass):
        assert np.array_equal(a.run(bare), a.run(ctx))
