"""T5 perturbation (Tonekaboni et al. 2025): change a personal attribute in the prompt,
regenerate, and see whether a finding survives.

Perturbations: ``age`` moves the AGE token by ``age_shift`` years (down; up when that would go
below 18), to the nearest age the vocabulary holds; ``sex`` swaps the sex token for the other one
the vocabulary holds. A finding is **fragile** (individual memorization) when a perturbation

* moves a T2 finding's prediction across ``p_th`` (from above to at or below), or
* raises a T1 finding's d_EMD beyond the patient's random-baseline median,

and **stable** (population-level generalization) otherwise. Both thresholds are reported.
"""

from __future__ import annotations

from typing import Sequence

from rotelab.clinical.tokens import AGE, SEX_PREFIXES, TokenFormat

PERTURBATIONS = ("age", "sex")


def shifted_age(age: int, shift: int) -> int:
    """Examples:

    >>> shifted_age(70, 10), shifted_age(24, 10)
    (60, 34)
    """
    return age - shift if age - shift >= 18 else age + shift


def perturb(prompt: Sequence[int], fmt: TokenFormat, *, age_shift: int) -> dict[str, list[int]]:
    """The prompt under each applicable perturbation (a prompt without the attribute has none)."""
    ages = {int(t[len(AGE):]): i for t, i in fmt.ids.items() if t.startswith(AGE) and t[len(AGE):].isdigit()}
    out: dict[str, list[int]] = {}
    for pos, tid in enumerate(prompt):
        tok = fmt.vocab[tid]
        if tok.startswith(AGE) and tok[len(AGE):].isdigit() and "age" not in out:
            want = shifted_age(int(tok[len(AGE):]), age_shift)
            new = ages[min(ages, key=lambda a: (abs(a - want), a))]
            if new != tid:
                out["age"] = list(prompt[:pos]) + [new] + list(prompt[pos + 1 :])
        prefix = next((p for p in SEX_PREFIXES if tok.startswith(p)), None)
        if prefix and "sex" not in out:
            others = sorted(i for t, i in fmt.ids.items() if t.startswith(prefix) and i != tid)
            if others:
                out["sex"] = list(prompt[:pos]) + [others[0]] + list(prompt[pos + 1 :])
    return out


def fragile_t2(rate: float, perturbed: dict[str, float], p_th: float) -> list[str]:
    """Perturbations that move a T2 prediction above ``p_th`` to at or below it.

    >>> fragile_t2(0.8, {"age": 0.3, "sex": 0.7}, 0.5)
    ['age']
    """
    return [k for k, r in perturbed.items() if rate > p_th >= r]


def fragile_t1(perturbed: dict[str, float], baseline_median: float) -> list[str]:
    """Perturbations that raise a T1 finding's d_EMD beyond the random-baseline median.

    >>> fragile_t1({"age": 0.9, "sex": 0.4}, 0.6)
    ['age']
    """
    return [k for k, d in perturbed.items() if d > baseline_median]
