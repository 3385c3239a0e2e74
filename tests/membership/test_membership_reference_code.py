"""Each attack against an independent implementation: a transcription of its authors' (or
MIMIR's) code fed the same inputs, or a hand computation from the model's own log-probs."""

from __future__ import annotations

import itertools
import warnings
import zlib
from collections import Counter

import numpy as np
import pytest
import torch

from rotelab.core.models import load_model
from rotelab.core.signals import compute_signals
from rotelab.membership.attacks import ATTACKS
from rotelab.membership.attacks.dcpdd import dcpdd_score, token_frequencies
from rotelab.membership.attacks.pointwise import mink_score, minkpp_score
from rotelab.membership.attacks.recall import fit_shots, shot_ids
from rotelab.membership.attacks.samia import samia_score, split_words
from rotelab.membership.context import AttackContext, MIAConfig


@pytest.fixture(scope="module")
def lm(tiny_testbed):
    return load_model(tiny_testbed)


@pytest.fixture(scope="module")
def every_text(tiny_splits):
    return sorted({r["text"] for name in ("members", "nonmembers", "prefix_pool", "paraphrases") for r in tiny_splits[name]})


@pytest.fixture(scope="module")
def signals(lm, every_text):
    return compute_signals(lm, every_text, progress=False)


# -- Min-K% and Min-K%++: zjysteven/mink-plus-plus run.py (the same count as swj0419/detect-pretrain-code and MIMIR) --
def authors_mink(token_log_probs: np.ndarray, ratio: float) -> float:
    k_length = int(len(token_log_probs) * ratio)
    topk = np.sort(token_log_probs)[:k_length]
    return np.mean(topk).item()


def authors_minkpp(token_log_probs: np.ndarray, mu: np.ndarray, sigma: np.ndarray, ratio: float) -> float:
    """``sigma`` is the variance there: ``(probs * log_probs**2).sum(-1) - mu**2``."""
    mink_plus = (token_log_probs - mu) / np.sqrt(sigma)
    k_length = int(len(mink_plus) * ratio)
    topk = np.sort(mink_plus)[:k_length]
    return np.mean(topk).item()


@pytest.mark.parametrize("k", [0.1, 0.2, 0.5, 1.0])
def test_mink_and_minkpp_equal_the_authors_code_on_the_testbed(signals, k):
    """Same log-probs, mu and sigma^2 in; equal to 1e-6 on every text of the tiny testbed. Texts
    with int(n k) = 0 scored tokens (n <= 4 at k = 0.2), where the authors' code averages an empty
    slice (NaN), are exempt: rotelab takes the single lowest token there."""
    checked = exempt = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the authors' mean of an empty slice
        for s in signals:
            lp, mu, var = s.logp.astype(np.float64), s.mu.astype(np.float64), s.sigma.astype(np.float64) ** 2
            a, b = authors_mink(lp, k), authors_minkpp(lp, mu, var, k)
            if int(len(lp) * k) == 0:
                assert np.isnan(a) and np.isnan(b) and mink_score(s, k=k) == lp.min()
                exempt += 1
                continue
            assert mink_score(s, k=k) == pytest.approx(a, abs=1e-6)
            assert minkpp_score(s, k=k) == pytest.approx(b, abs=1e-6)
            checked += 1
    assert checked > 400 and exempt == sum(len(s.logp) * k < 1 for s in signals)


def test_mink_and_minkpp_equal_the_authors_code_from_raw_logits(lm, tiny_splits):
    """The authors' whole computation (model(input_ids, labels=input_ids), log_softmax, gather) on
    texts within the context, against rotelab's signal pass: float32 agreement."""
    texts = [r["text"] for r in tiny_splits["members"] if r["kind"] == "fact"][:12]
    for text, s in zip(texts, compute_signals(lm, texts, progress=False)):
        input_ids = torch.tensor(lm.tokenizer.encode(text)).unsqueeze(0)
        with torch.no_grad():
            logits = lm.model(input_ids, labels=input_ids).logits
        input_ids = input_ids[0][1:].unsqueeze(-1)
        probs = torch.softmax(logits[0, :-1], dim=-1)
        log_probs = torch.log_softmax(logits[0, :-1], dim=-1)
        token_log_probs = log_probs.gather(dim=-1, index=input_ids).squeeze(-1)
        mu = (probs * log_probs).sum(-1)
        sigma = (probs * torch.square(log_probs)).sum(-1) - torch.square(mu)
        assert mink_score(s, k=0.2) == pytest.approx(authors_mink(token_log_probs.numpy(), 0.2), abs=1e-5)
        assert minkpp_score(s, k=0.2) == pytest.approx(authors_minkpp(token_log_probs.numpy(), mu.numpy(), sigma.numpy(), 0.2), abs=1e-4)


# -- GradNorm: MIMIR's gradnorm.py ------------------------------------------------------------------
def mimir_gradnorm(model, ids: list[int], p: float) -> float:
    model.zero_grad()
    x = torch.tensor([ids])
    logits = model(x).logits
    log_probabilities = torch.log_softmax(logits[..., :-1, :], dim=-1)
    all_prob = log_probabilities[0, torch.arange(len(ids) - 1), x[0, 1:]]
    loss = -torch.mean(all_prob)
    loss.backward()
    grad_norms = [param.grad.detach().norm(p) for param in model.parameters() if param.grad is not None]
    grad_norm = torch.stack(grad_norms).mean()
    model.zero_grad()
    return -grad_norm.item()


@pytest.mark.parametrize("p", ["2", "inf"])
def test_gradnorm_equals_mimirs_code(lm, tiny_splits, p):
    texts = [r["text"] for r in tiny_splits["members"] if r["kind"] == "fact"][:6] + [r["text"] for r in tiny_splits["nonmembers"] if r["kind"] == "fact"][:6]
    ctx = AttackContext(lm, texts, compute_signals(lm, texts, progress=False), MIAConfig(gradnorm_p=p))
    ours = ATTACKS["gradnorm"].run(ctx)
    theirs = [mimir_gradnorm(lm.model, ids, float(p)) for ids in lm.tokenize(texts)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert ctx.details["gradnorm"] == {"p": p}


def test_the_two_gradnorm_norms_differ(lm, tiny_splits):
    texts = [r["text"] for r in tiny_splits["members"] if r["kind"] == "fact"][:3]
    sig = compute_signals(lm, texts, progress=False)
    two, inf = (ATTACKS["gradnorm"].run(AttackContext(lm, texts, sig, MIAConfig(gradnorm_p=p))) for p in ("2", "inf"))
    assert (two < inf).all()  # -||g||_2 < -||g||_inf for every tensor with more than one non-zero entry


# -- DC-PDD: zhang-wei-chao/DC-PDD (com_fre_dis.py, com_det_sco.py) --------------------------------
def authors_frequencies(ref_texts, tokenizer, vob_siz: int, max_tok: int = 1024) -> np.ndarray:
    fre_dis = [0] * vob_siz
    for text in ref_texts:
        input_ids = tokenizer.encode(text)[:max_tok]
        for i in input_ids:
            fre_dis[i] += 1
    fre_dis_npy = np.array(fre_dis)
    return (fre_dis_npy + 1) / (sum(fre_dis_npy) + len(fre_dis_npy))


def authors_dcpdd(tar_prob: list[float], input_ids: list[int], fre_dis: np.ndarray, a: float) -> float:
    """Their member score is the negative of ``pred["DC-PDD"]`` (``sweep`` uses ``-score``)."""
    probs = np.exp(tar_prob)
    indexes = []
    current_ids = []
    for i, input_id in enumerate(input_ids):
        if input_id not in current_ids:
            indexes.append(i)
            current_ids.append(input_id)
    x_pro = probs[indexes]
    x_fre = fre_dis[np.array(input_ids)[indexes]]
    ce = x_pro * np.log(1 / x_fre)
    ce[ce > a] = a
    return -(-np.mean(ce))


def test_dcpdd_equals_the_authors_code_on_the_testbed(lm, tiny_splits, signals, every_text):
    corpus = [r["text"] for r in tiny_splits["prefix_pool"]]
    scored = [t for t in every_text if t not in set(corpus)]
    freq = authors_frequencies(corpus, lm.tokenizer, lm.n_embeddings)
    assert np.allclose(token_frequencies(lm.tokenize(corpus), lm.n_embeddings), freq, rtol=1e-12)
    ctx = AttackContext(lm, scored, compute_signals(lm, scored, progress=False), MIAConfig(dcpdd_a=0.01), frequency_texts=corpus)
    ours = ATTACKS["dcpdd"].run(ctx)
    theirs = [authors_dcpdd(s.logp.tolist(), s.token_ids[1:].tolist(), freq, 0.01) for s in ctx.signals]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    assert ctx.details["dcpdd"]["corpus_texts"] == len(corpus)
    assert ctx.details["dcpdd"]["corpus_tokens"] == sum(len(x) for x in lm.tokenize(corpus))
    assert dcpdd_score(np.log([0.5, 0.5]), np.array([3, 3]), np.full(4, 0.25), a=1.0) == pytest.approx(0.5 * np.log(4))  # one first occurrence


# -- SaMIA: nlp-titech/samia (eval_samia.py) ----------------------------------------------------------
def authors_rouge_n(candidate: list, reference: list, n=1) -> float:
    if not candidate or not reference:
        return 0
    candidate_ngrams = list(zip(*[candidate[i:] for i in range(n)]))
    reference_ngrams = list(zip(*[reference[i:] for i in range(n)]))
    overlap = Counter(reference_ngrams) & Counter(candidate_ngrams)
    return sum(overlap.values()) / len(reference)


def authors_samia(suffix_ref: list[str], continuations: list[str], use_zlib: bool) -> float:
    rouge_scores = []
    for text_output in continuations:
        suffix_cand = [w for w in text_output.split(" ") if w != ""]
        if use_zlib:
            zlib_cand = zlib.compress(" ".join(suffix_cand).encode("utf-8"))
            rouge_scores.append(authors_rouge_n(suffix_cand, suffix_ref, n=1) * len(zlib_cand))
        else:
            rouge_scores.append(authors_rouge_n(suffix_cand, suffix_ref, n=1))
    return float(np.array([rouge_scores]).mean(axis=1)[0])


@pytest.mark.parametrize("use_zlib", [False, True])
def test_samia_score_equals_the_authors_evaluation(tiny_splits, use_zlib):
    rng = np.random.default_rng(0)
    texts = [r["text"] for r in tiny_splits["members"]][:30]
    for t in texts:
        prompt, suffix = split_words(t, 0.5)
        words = t.split()
        assert prompt == " ".join(words[: int(len(words) * 0.5)]) and suffix == words[int(len(words) * 0.5) :]
        cands = [" ".join(rng.choice(words + ["zzz", "the"], size=rng.integers(0, 30))) for _ in range(5)]
        assert samia_score(cands, suffix, use_zlib=use_zlib) == pytest.approx(authors_samia(suffix, cands, use_zlib), rel=1e-12)


def test_samia_samples_depend_on_the_text_not_the_batch(lm, tiny_splits):
    texts = [r["text"] for r in tiny_splits["members"] if r["kind"] == "fact"][:5]
    run = lambda ts, bs: ATTACKS["samia"].run(AttackContext(lm, ts, compute_signals(lm, ts, progress=False), MIAConfig(samia_samples=3, batch_size=bs)))  # noqa: E731
    a = run(texts, 2)
    b = run(texts[::-1], 5)[::-1]
    assert np.array_equal(a, b)


# -- ReCaLL / Con-ReCaLL: whole shots, and the scores from the model's log-probs by hand -------------
def test_fit_shots_keeps_the_most_whole_shots_that_fit():
    rng = np.random.default_rng(0)
    for _ in range(300):
        lengths = rng.integers(1, 40, size=rng.integers(1, 6)).tolist()
        n, L = int(rng.integers(2, 60)), int(rng.integers(60, 100))
        kept, keep = fit_shots(lengths, n, L)
        best = max((len(c) for r in range(len(lengths) + 1) for c in itertools.combinations(range(len(lengths)), r)
                    if sum(lengths[i] for i in c) + n <= L), default=0)
        if best:
            assert keep == n and len(kept) == best and sum(lengths[i] for i in kept) + n <= L and kept == sorted(kept)
        else:  # not even the shortest shot fits: it is kept and the target cut beside it
            assert kept == [int(np.argmin(lengths))] and keep == L - min(lengths)


def _ll(lm, seq: list[int], n: int) -> float:
    """Mean log-lik of the last n - 1 tokens of seq, from one forward pass."""
    return float(lm.forward_logp([seq])[0][-(n - 1):].mean())


def test_recall_and_conrecall_equal_a_hand_computation_from_log_probs(lm, tiny_splits):
    facts = [r["text"] for r in tiny_splits["members"] if r["kind"] == "fact"]
    texts = facts[:4] + [r["text"] for r in tiny_splits["nonmembers"] if r["kind"] == "fact"][:4]
    non_pool = [r["text"] for r in tiny_splits["nonmembers"] if r["kind"] == "fact"][10:14]  # fact-length shots: whole ones fit
    mem_pool = facts[10:14]
    cfg = MIAConfig(recall_shots=3, conrecall_gamma=0.7)
    ctx = AttackContext(lm, texts, compute_signals(lm, texts, progress=False), cfg, prefix_texts=non_pool, member_prefix_texts=mem_pool)
    recall, conrecall = ATTACKS["recall"].run(ctx), ATTACKS["conrecall"].run(ctx)
    bos, L = lm.bos_ids, lm.max_length
    shots = {"non": shot_ids(lm, non_pool[:3]), "mem": shot_ids(lm, mem_pool[:3])}
    for i, x in enumerate(lm.tokenize(texts)):
        n = min(fit_shots([len(s) for s in sh], len(x), L)[1] for sh in shots.values())
        ll = {}
        for name, sh in shots.items():
            kept, _ = fit_shots([len(s) for s in sh], n, L)
            assert kept, "fact-length shots fit beside a fact"
            ll[name] = _ll(lm, bos + sum((sh[j] for j in kept), []) + x[len(bos):n], n)
        plain = float(lm.forward_logp([x])[0][: n - 1].mean())
        assert recall[i] == pytest.approx(ll["non"] / plain, rel=1e-5)
        assert conrecall[i] == pytest.approx((ll["non"] - 0.7 * ll["mem"]) / plain, rel=1e-5)
    d = ctx.details["conrecall"]
    assert d["n_targets_cut"] == 0 and "note" not in d and d["shots_used"]["conrecall_member"]["max"] >= 1
