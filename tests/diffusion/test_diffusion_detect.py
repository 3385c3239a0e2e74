import numpy as np

from rotelab.diffusion.detect import token_attribution, wen_norm, wen_scores


def test_wen_norm_is_zero_for_the_null_prompt(tiny):
    model = tiny[0]
    assert float(wen_norm(model, model.null_embedding(), seeds=range(2))) < 1e-6


def test_wen_scores_are_positive_and_deterministic(tiny):
    model, _, _, _, ys = tiny
    a, b = wen_scores(model, ys[:4], seeds=range(3)), wen_scores(model, ys[:4], seeds=range(3))
    assert (a > 0).all() and np.array_equal(a, b)


def test_token_attribution_covers_prompt_tokens_only(tiny):
    model, items, *_ = tiny
    ids, g = token_attribution(model, items[0]["text"], seeds=range(2))
    n_words = len(items[0]["text"].split())
    assert len(ids) == len(g) == 8
    assert (g[1 : 1 + n_words] > 0).all()
