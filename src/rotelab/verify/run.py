"""The verification on validated inputs, in an open run folder (see :func:`rotelab.verify.api.verify`).

Model states, each re-measured on the same forget and holdout samples by the membership suite
(a sub-run ``attacks/mia-<state>/``): ``unlearned``; ``original`` and ``retrained`` when given;
``quant<b>`` (weights rounded to b bits); ``relearn-retain`` and ``relearn-split`` (a fixed
budget of fine-tuning steps on retain only, and on the relearning data); with a retrained model,
``retrained-<attack>``: the retrained model under the identical attack, the control each attacked
state's AUC is read against (:func:`rotelab.verify.metrics.controlled_auc_excess_p`). Besides: REMIND on the
unlearned model (``attacks/remind``), extraction before and after (``attacks/extract-<state>``),
the truth ratios and Forget Quality against the retrained model.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rotelab.core.runs import read_parquet
from rotelab.core.stats import summarize
from rotelab.verify.metrics import auc_excess_p, controlled_auc_excess_p, forget_quality, oracle_distance, recovered_share
from rotelab.verify.verdict import DIRECT, INDIRECT, Evidence, verdict

if TYPE_CHECKING:
    from rotelab.core.data import Sample
    from rotelab.core.models import LanguageModel
    from rotelab.core.runs import RunFolder
    from rotelab.verify.api import VerifyConfig


class _Sub:
    """Where each sub-run goes and the options every sub-run shares."""

    def __init__(self, run: "RunFolder", cache, overwrite: bool, progress: bool):
        self.run, self.cache, self.overwrite, self.progress = run, cache, overwrite, progress

    def path(self, name: str) -> Path:
        return self.run.path / "attacks" / name

    def kw(self, name: str) -> dict[str, Any]:
        return dict(out=self.path(name), cache=self.cache, overwrite=self.overwrite, progress=self.progress)


def _attacked_states(lm: "LanguageModel", sets, relearn, config: "VerifyConfig", run: "RunFolder", progress: bool, *, tag: str = "") -> tuple[dict[str, "LanguageModel"], dict[str, Any]]:
    """The quantized and relearned copies of ``lm`` (relearned ones saved in ``models/<tag><state>``):
    the unlearned model's (``tag`` empty) and, under the identical attacks, the retrained control's."""
    from rotelab.core.console import say
    from rotelab.core.models import HFLanguageModel
    from rotelab.verify.attacks import quantized_copy, relearned_copy

    states: dict[str, LanguageModel] = {}
    notes: dict[str, Any] = {}
    if not isinstance(lm, HFLanguageModel):
        notes["reason"] = f"the {lm.backend} backend offers no weights: no quantization or relearning attack"
        return states, notes

    def wrap(module, name: str) -> "LanguageModel":
        return HFLanguageModel(module, lm.tokenizer, name=f"{lm.name} ({name})", long_text=lm.long_text, max_length=lm.max_length)

    for b in config.quantize_bits:
        q, n = quantized_copy(lm.model, b)
        states[f"quant{b}"] = wrap(q, f"{b}-bit")
        notes[f"quant{b}"] = {"bits": b, "layers_quantized": n, "scheme": "symmetric per-output-channel round-to-nearest, absmax scale; output head kept"}
    data = {"relearn-retain": sets["retain"]} | ({"relearn-split": relearn} if relearn else {})
    if config.relearn.steps == 0:
        return states, notes
    for name, rows in data.items():
        dest = run.path / "models" / f"{tag}{name}"

        def train(rows=rows, dest=dest, name=name):
            from rotelab.core.training import save_model_dir

            say(f"relearning attack{' (control: ' + tag.rstrip('-') + ')' if tag else ''}: {config.relearn.steps} steps on {name.removeprefix('relearn-')} ({len(rows)} texts)") if progress else None
            ids = [x[: lm.max_length] for x in lm.tokenize([s.text for s in rows])]
            m, losses = relearned_copy(lm.model, ids, config.relearn, pad_id=lm.pad_id)
            save_model_dir(m, lm.tokenizer, dest)
            run.write_json(f"models/{tag}{name}.json", {"losses": losses, "n_texts": len(rows), **asdict(config.relearn)})
            return m

        def load(dest=dest):
            from transformers import AutoModelForCausalLM

            return AutoModelForCausalLM.from_pretrained(dest, use_safetensors=True).to(lm.device)

        states[name] = wrap(run.step(f"train:{tag}{name}", train, load=load), name)
        notes[name] = run.file(f"models/{tag}{name}.json")
    return states, notes


def _membership(sub: _Sub, state: str, lm: "LanguageModel", forget, holdout, attacks: str, config: "VerifyConfig") -> tuple[dict, dict[str, np.ndarray]]:
    """The membership suite on forget vs holdout for one model state: metrics and per-sample scores."""
    from rotelab.membership.api import mia
    from rotelab.membership.context import MIAConfig

    metrics = mia(lm, forget, holdout, attacks=attacks, config=MIAConfig(batch_size=config.batch_size, seed=config.seed), **sub.kw(f"mia-{state}"))
    return metrics, read_parquet(sub.path(f"mia-{state}") / "scores.parquet")


def _split(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(scores)
    return scores[ok & (labels == 1)], scores[ok & (labels == 0)]


def _evidence(name: str, family: str, pos: np.ndarray, neg: np.ndarray, config: "VerifyConfig") -> tuple[Evidence | None, dict]:
    """One attack's verdict figure (AUC, interval, p-value) and its TPR at 1% FPR."""
    if len(pos) < 2 or len(neg) < 2:
        return None, {"attack": name, "family": family, "auc": None, "auc_reason": f"{len(pos)} forget and {len(neg)} holdout scores; needs 2 of each"}
    r = auc_excess_p(pos, neg, delta=config.delta, n_boot=config.n_boot, seed=config.seed)
    s = summarize(np.r_[pos, neg], np.r_[np.ones(len(pos)), np.zeros(len(neg))], n_boot=10, seed=config.seed, fprs=(0.01,))
    extra = {k: v for k, v in s.items() if k.startswith("tpr_at_1pct")}
    return Evidence(name, family, r["auc"], tuple(r["auc_ci"]), r["p_value"]), extra


def _controlled_evidence(name: str, att: np.ndarray, ctl: np.ndarray, before: tuple[np.ndarray, np.ndarray] | None, labels: np.ndarray, config: "VerifyConfig") -> tuple[Evidence | None, dict]:
    """An attacked model's figure against the retrained control under the identical attack
    (:func:`rotelab.verify.metrics.controlled_auc_excess_p`; ``before``: the unlearned and retrained
    models' scores before it), on the samples every array scores finitely."""
    arrs = [att, ctl, *(before or ())]
    ok = np.logical_and.reduce([np.isfinite(a) for a in arrs])
    f, h = ok & (labels == 1), ok & (labels == 0)
    if f.sum() < 2 or h.sum() < 2:
        return _evidence(name, INDIRECT, att[f], att[h], config)
    r = controlled_auc_excess_p(att[f], att[h], ctl[f], ctl[h], before=(before[0][f], before[0][h], before[1][f], before[1][h]) if before else None,
                                delta=config.delta, n_boot=config.n_boot, seed=config.seed)
    _, extra = _evidence(name, INDIRECT, att[f], att[h], config)  # TPR@1%FPR of the attacked model itself
    extra |= {"statistic": _STATISTIC[before is not None]} | {k: r[k] for k in ("raw_auc", "control_auc", "level", "change", "unlearned_auc", "control_before_auc") if k in r}
    return Evidence(name, INDIRECT, r["auc"], tuple(r["auc_ci"]), r["p_value"]), extra


_STATISTIC = {True: "0.5 + min(level, change): level = AUC(attacked) - AUC(retrained, same attack); change = [AUC(attacked) - AUC(unlearned)] - [AUC(retrained, same attack) - AUC(retrained)]",
              False: "0.5 + AUC(attacked) - AUC(retrained, same attack)"}


def run_verify(
    lm: "LanguageModel",
    sets: dict[str, list["Sample"]],
    scored_retain: list["Sample"],
    run: "RunFolder",
    *,
    config: "VerifyConfig",
    original: "LanguageModel | None" = None,
    retrained: "LanguageModel | None" = None,
    relearn: list["Sample"] | None = None,
    truth_rows: list["Sample"] | None = None,
    cache=None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Every attack, the evidence table and the verdict; returns ``verify.json``'s content."""
    from rotelab.extraction.api import extract_samples
    from rotelab.extraction.samples import SamplesConfig

    sub = _Sub(run, cache, overwrite, progress)
    F, H = sets["forget"], sets["holdout"]
    score = config.attacked_score
    seconds: dict[str, float] = {}
    t0 = time.time()

    # direct: the membership suite and extraction on the unlearned model (and the reference states)
    base = {"unlearned": lm} | ({"original": original} if original else {}) | ({"retrained": retrained} if retrained else {})
    membership, scores = {}, {}
    for state, m in base.items():
        membership[state], scores[state] = _membership(sub, state, m, F, H, config.attacks, config)
    seconds["membership"] = time.time() - t0
    rows, extras = [], {}

    def add(name, family, pos, neg):
        ev, extra = _evidence(name, family, pos, neg, config)
        extras[name] = extra
        if ev is not None:
            rows.append(ev)

    labels = scores["unlearned"]["label"].astype(int)
    for a in config.attacks.split(","):
        add(f"mia:{a}", DIRECT, *_split(scores["unlearned"][a].astype(float), labels))

    t = time.time()
    xcfg = SamplesConfig(prefix_tokens=config.extract_prefix, suffix_tokens=config.extract_suffix, batch_size=config.batch_size)
    extraction = {}
    fids = {s.id for s in F}
    texts = {s.id: s.text for s in F + H}
    for state in [s for s in ("original", "unlearned") if s in base]:
        extract_samples(base[state], F + H, config=xcfg, overwrite=overwrite, progress=progress, out=sub.path(f"extract-{state}"))
        cols = read_parquet(sub.path(f"extract-{state}") / "samples.parquet")
        is_f = np.array([i in fids for i in cols["id"]])
        extraction[state] = _extraction_summary(cols, is_f, suffix_rouge_l(base[state], cols, texts, is_f, config))
        if state == "unlearned":
            add("extraction:match", DIRECT, *_split(cols["match"].astype(float), is_f.astype(int)))
    seconds["extraction"] = time.time() - t

    # indirect: REMIND, quantization, relearning
    remind_metrics = None
    if config.remind:
        from rotelab.membership.remind.api import remind

        t = time.time()
        remind_metrics = remind(lm, scored_retain, F, H, paraphrases=[], config=config.remind_config, **sub.kw("remind"))
        feats = read_parquet(sub.path("remind") / "features.parquet")
        fh = np.isin(feats["state"].astype(str), ["forgotten", "holdout"])
        p = feats["p_forgotten"][fh] / np.maximum(feats["p_forgotten"][fh] + feats["p_holdout"][fh], 1e-12)
        add("remind", INDIRECT, *_split(p.astype(float), (feats["state"][fh].astype(str) == "forgotten").astype(int)))
        seconds["remind"] = time.time() - t

    t = time.time()
    attacked, attack_notes = _attacked_states(lm, sets, relearn, config, run, progress)
    control = _attacked_states(retrained, sets, relearn, config, run, progress, tag="retrained-")[0] if retrained is not None and attacked else {}
    for state, m in attacked.items():
        membership[state], scores[state] = _membership(sub, state, m, F, H, score, config)
        lab = scores[state]["label"].astype(int)
        if state not in control:
            add(f"{state}:{score}", INDIRECT, *_split(scores[state][score].astype(float), lab))
            continue
        c = f"retrained-{state}"
        membership[c], scores[c] = _membership(sub, c, control[state], F, H, score, config)
        if any(list(scores[k]["id"]) != list(scores[state]["id"]) for k in (c, "unlearned", "retrained")):
            raise RuntimeError(f"the control's scores of {state} are not in the attacked model's sample order")
        before = tuple(scores[k][score].astype(float) for k in ("unlearned", "retrained")) if score in scores["unlearned"] and score in scores["retrained"] else None
        ev, extras[f"{state}:{score}"] = _controlled_evidence(f"{state}:{score}", scores[state][score].astype(float), scores[c][score].astype(float), before, lab, config)
        if ev is not None:
            rows.append(ev)
    seconds["quantization_and_relearning"] = time.time() - t

    fr_metrics, _ = _membership(sub, "unlearned-forget-vs-retain", lm, F, scored_retain, score, config)
    decision = verdict(rows, alpha=config.alpha)
    for r in decision["attacks"]:
        r.update(extras.get(r["attack"], {}))
    undefined = [extras[n] for n in extras if extras[n].get("auc") is None and "auc_reason" in extras[n]]
    result: dict[str, Any] = {
        "verdict": decision["verdict"], "detected_by": decision["detected_by"],
        "rule": f"an attack detects when its forgotten-vs-holdout AUC exceeds 0.5 + {config.delta} at Holm-adjusted one-sided p <= {config.alpha / 2} "
                "(bootstrap; with one attack: the 95% interval's lower end above 0.5 + delta). not removed: a direct attack detects; "
                "hidden: only REMIND, quantization or relearning does; removed: none does. " + _CONTROL_RULE[bool(control)],
        "attack_control": "retrained" if control else None,
        "evidence": decision["attacks"] + undefined,
        "n": {"forget": len(F), "holdout": len(H), "retain_scored": len(scored_retain)},
        "membership": {st: {a: _brief(v) for a, v in m.items() if isinstance(v, dict) and "auc" in v} for st, m in membership.items()},
        "forgotten_vs_retained": {score: _brief(fr_metrics[score])},
        "extraction": extraction,
        "remind": _remind_brief(remind_metrics) if remind_metrics else None,
        "attacks": _attack_figures(scores, attacked, attack_notes, score, config),
        "oracle": _oracle(lm, scores, retrained, truth_rows, original, score, config, run),
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
        "config": asdict(config),
    }
    run.write_json("verify.json", result)
    return result


_CONTROL_RULE = {
    True: "Quantization and relearning rows are controlled by the retrained model under the identical attack: their AUC is 0.5 + min(level, change), "
          "level = AUC(attacked unlearned) - AUC(attacked retrained), change = the attack's rise of the unlearned model's AUC minus its rise of the retrained model's "
          "(paired bootstrap over the same samples; both must exceed delta), so neither what an attack does to a model that never saw the forget set, "
          "nor a residual the direct attacks already measure, nor an attack undoing over-unlearning reads as recovery.",
    False: "Quantization and relearning rows are uncontrolled (no --retrained model): their AUC is the attacked model's own, so a forget/holdout "
           "difference the attack creates in any model (e.g. relearning data that shares attribute values with the forget set) reads as recovery.",
}


def _brief(m: dict) -> dict:
    keys = ("auc", "auc_ci", "tpr_at_1pct_fpr", "tpr_at_1pct_fpr_ci", "tpr_at_1pct_fpr_reason", "n_members", "n_nonmembers")
    return {k: m[k] for k in keys if k in m}


def _remind_brief(m: dict) -> dict:
    r = m["remind"]
    keep = ("auc_forgotten_vs_holdout", "auc_forgotten_vs_holdout_ci", "tpr_at_1pct_fpr_forgotten_vs_holdout", "tpr_at_1pct_fpr_forgotten_vs_holdout_ci", "auc_3way_macro")
    base = {b: v.get("auc_forgotten_vs_holdout") for b, v in m.get("baselines", {}).items()}
    return {k: r.get(k) for k in keep} | {"baselines_auc_forgotten_vs_holdout": base}


def suffix_rouge_l(lm: "LanguageModel", cols: dict[str, np.ndarray], texts: dict[str, str], is_f: np.ndarray, config: "VerifyConfig") -> np.ndarray:
    """ROUGE-L F1 (:func:`rotelab.core.similarity.rouge_l`) of each forget sample's greedy suffix
    (``generated``) against its true ``extract_suffix`` tokens after the prefix; NaN for holdout
    rows and samples too short to extract."""
    from rotelab.core.similarity import rouge_l

    out = np.full(len(cols["id"]), np.nan)
    sel = [k for k in range(len(out)) if is_f[k] and np.isfinite(float(cols["em"][k]))]
    b, P, T = len(lm.bos_ids), config.extract_prefix, config.extract_suffix
    for k, x in zip(sel, lm.tokenize([texts[cols["id"][k]] for k in sel])):
        out[k] = rouge_l(lm.detokenize(x[b + P : b + P + T]), str(cols["generated"][k]))
    return out


def _extraction_summary(cols: dict[str, np.ndarray], is_f: np.ndarray, rouge: np.ndarray) -> dict[str, Any]:
    """Forget-set extraction rates (k-extractable = exact suffix, regurgitation) with intervals,
    mean ROUGE-L of the greedy suffix with its bootstrap interval, mean EM / ES / token match."""
    from rotelab.core.stats import bootstrap_ci, rate_ci

    ok = is_f & np.isfinite(cols["em"].astype(float))
    n = int(ok.sum())
    mean = lambda c: float(cols[c][ok].astype(float).mean()) if n else None  # noqa: E731
    r = rouge[ok]
    return {"n": n, "n_too_short": int(is_f.sum()) - n, "k_extractable": rate_ci(int(cols["exact"][ok].sum()), n, reason="no forget sample long enough"),
            "regurgitation": rate_ci(int(cols["regurgitated"][ok].sum()), n, reason="no forget sample long enough"),
            "mean_rouge_l": float(r.mean()) if n else None, "mean_rouge_l_ci": bootstrap_ci(r) if n > 1 else None,
            "mean_token_match": mean("match"), "mean_exact_memorization": mean("em"), "mean_extraction_strength": mean("es")}


def _nll(scores: dict[str, np.ndarray], label: int) -> np.ndarray:
    """Per-sample mean NLL from the loss attack's column (loss = -NLL), forget (1) or holdout (0)."""
    return -scores["loss"][scores["label"] == label].astype(float)


def _attack_figures(scores, attacked, notes, score: str, config: "VerifyConfig") -> dict[str, Any]:
    """Per attacked state: its note, and the recovered share of the original-vs-unlearned forget
    loss gap (with the holdout's drop in the same units: the null every recovery is read against)."""
    out: dict[str, Any] = {"reason": notes["reason"]} if "reason" in notes else {}
    for state in attacked:
        note = notes.get(state)
        fig: dict[str, Any] = {"details": str(note) if isinstance(note, Path) else note}
        if "original" in scores and score == "loss" and "loss" in scores["original"]:
            o, u, a = (_nll(scores[s], 1) for s in ("original", "unlearned", state))
            fig["recovered_share_forget"] = recovered_share(o, u, a, seed=config.seed)
            gap = u.mean() - o.mean()
            uh, ah = _nll(scores["unlearned"], 0), _nll(scores[state], 0)
            fig["holdout_drop_share"] = float((uh.mean() - ah.mean()) / gap) if gap > 0 else None
            c = f"retrained-{state}"
            if c in scores and "retrained" in scores and gap > 0:  # the control's drops under the same attack, same units
                fig["control_drop_share"] = {lab: float((_nll(scores["retrained"], i).mean() - _nll(scores[c], i).mean()) / gap) for lab, i in (("forget", 1), ("holdout", 0))}
        else:
            fig["recovered_share_forget"] = {"share": None, "share_reason": "needs --original and --attacked-score loss"}
        out[state] = fig
    return out


def _oracle(lm, scores, retrained, truth_rows, original, score: str, config: "VerifyConfig", run: "RunFolder") -> dict[str, Any] | None:
    """Distance to the retrained oracle: ``oracle_distance`` on forget-set scores, Forget Quality on truth ratios."""
    if retrained is None:
        return {"reason": "no --retrained model given"}
    f_unl = scores["unlearned"][score][scores["unlearned"]["label"] == 1].astype(float)
    f_ret = scores["retrained"][score][scores["retrained"]["label"] == 1].astype(float)
    out: dict[str, Any] = {"oracle_distance": oracle_distance(f_unl, f_ret), "score": score}
    if truth_rows:
        from rotelab.verify.truth import truth_ratios

        models = {"unlearned": lm, "retrained": retrained} | ({"original": original} if original else {})
        tr = {k: truth_ratios(m, truth_rows, batch_size=config.batch_size) for k, m in models.items()}
        run.write_parquet("truth_ratios.parquet", {"id": [s.id for s in truth_rows], **tr})
        out["forget_quality"] = forget_quality(tr["unlearned"], tr["retrained"])
        out["mean_truth_ratio"] = {k: float(np.mean(v)) for k, v in tr.items()}
    else:
        out["forget_quality"] = None
        out["forget_quality_reason"] = "no perturbed answers (--perturbed) for the forget set"
    return out
