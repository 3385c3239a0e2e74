"""Report sections of the testbed: what the model memorized (by copies) and how unlearning went."""

from __future__ import annotations

from pathlib import Path

from rotelab.core.runs import RunFolder
from rotelab.core.io import read_json
from rotelab.report.html import img, table
from rotelab.report.registry import register_section


def plot_eval(run: RunFolder, ev: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    by = ev["loss_auc_books_by_copies"]
    xs = [int(c) for c in by]
    a.errorbar(xs, [by[c]["auc"] for c in by], yerr=[[by[c]["auc"] - by[c]["auc_ci"][0] for c in by], [by[c]["auc_ci"][1] - by[c]["auc"] for c in by]], marker="o", capsize=3)
    a.axhline(0.5, color="grey", lw=0.8, ls="--")
    a.set(xscale="log", xlabel="copies in training (exposures)", ylabel="loss-attack ROC-AUC", title="Membership vs non-members (books)", ylim=(0.4, 1.02))
    ex = {k: v for k, v in ev["extraction_books_by_copies"].items()}
    labels = list(ex)
    b.bar(range(len(labels)), [ex[k]["rate"] or 0 for k in labels], yerr=[[(ex[k]["rate"] or 0) - ex[k]["ci"][0] for k in labels], [ex[k]["ci"][1] - (ex[k]["rate"] or 0) for k in labels]], capsize=3, color="#cc6677")
    b.set_xticks(range(len(labels)), labels, rotation=30)
    p, s = ev["extraction_prefix_suffix"]
    b.set(xlabel="copies", ylabel="exactly extractable", title=f"Greedy {s} tokens after a {p}-token prefix", ylim=(0, 1.05))
    run.figure("testbed_memorization", fig)


def plot_unlearning(run: RunFolder, res: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = res["log"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, c in (("forget", "#cc3311"), ("retain", "#0077bb"), ("holdout", "#009988")):
        ax.plot([e["step"] for e in log], [e[k] for e in log], label=k, color=c)
    for name, t in res["targets"].items():
        ax.axhline(t, color="grey", lw=0.8, ls=":")
        ax.text(0, t, f" {name} stop calibration", va="bottom", fontsize=8)
    ax.set(xlabel="step", ylabel="mean NLL (nats / token)", title=f"Unlearning: {res['method']}")
    ax.legend()
    run.figure("unlearning_losses", fig)


@register_section("testbed", title="Testbed: what the model memorized", order=5)
def render_testbed(run: Path, manifest: dict) -> str | None:
    if not (run / "eval.json").exists():
        return None
    ev = read_json(run / "eval.json")
    tr = manifest.get("training", {}).get("model", {})
    parts = [f"<p>Preset <b>{manifest.get('preset', {}).get('name')}</b>, seed {manifest.get('seed')}: "
             f"{tr.get('n_parameters', 0):,} parameters, {tr.get('tokens', 0):,} training tokens in {tr.get('seconds')} s "
             f"({tr.get('tokens_per_s')} tokens/s). Sizes: {manifest.get('sizes')}.</p>"]
    rows = [{"copies": c, "n members": m["n_members"], "n non-members": m["n_nonmembers"], "AUC": m["auc"], "95% CI": m["auc_ci"]} for c, m in ev["loss_auc_books_by_copies"].items()]
    for name, key in (("books seen >= 4", "loss_auc_books_seen_ge4"), ("books seen once", "loss_auc_books_seen_once"), ("facts (member vs holdout people)", "loss_auc_facts")):
        m = ev[key]
        rows.append({"copies": name, "n members": m["n_members"], "n non-members": m["n_nonmembers"], "AUC": m["auc"], "95% CI": m["auc_ci"]})
    parts.append("<h3>Loss attack (-NLL) ROC-AUC</h3>" + table(rows))
    ex = [{"copies": c, "n": v["n"], "exact rate": v["rate"], "95% CI (Clopper-Pearson)": v["ci"], "mean token match": v["mean_match"]} for c, v in ev["extraction_books_by_copies"].items()]
    if "extraction_books_seen_ge20" in ev:
        v = ev["extraction_books_seen_ge20"]
        ex.append({"copies": "seen >= 20 (pooled)", "n": v["n"], "exact rate": v["rate"], "95% CI (Clopper-Pearson)": v["ci"], "mean token match": None})
    parts.append("<h3>Extraction (greedy)</h3>" + table(ex))
    can = [{"copies": c, "n": v["n"], "secret extracted": v["rate"], "95% CI": v["ci"]} for c, v in ev["canary_secret_extraction_by_copies"].items()]
    parts.append("<h3>Canaries</h3>" + table(can))
    if (run / "figures/testbed_memorization.png").exists():
        parts.append(img(run / "figures/testbed_memorization.png", alt="memorization by copies"))
    return "\n".join(parts)


def _stop_text(res: dict) -> str:
    """What the strengths are multiples of, as the run recorded it."""
    stop = res.get("stop_calibration")
    if stop is None:  # a run from before the stop-calibration split
        return "the holdout loss"
    return f"the loss on <code>{stop['split']}</code> ({stop['n_samples']} facts of never-trained people, disjoint from the holdout; {stop['loss']:.3f})"


@register_section("unlearning", title="Unlearning", order=6)
def render_unlearning(run: Path, manifest: dict) -> str | None:
    if not (run / "unlearn.json").exists():
        return None
    res = read_json(run / "unlearn.json")
    if res["method"] == "retrain":
        return "<p>Retrain control: a model trained from scratch on <code>retain</code> only.</p>" + table([{"split": k, "mean NLL": v} for k, v in res["losses"].items()])
    rows = [{"checkpoint": k, "step": v["step"], "forget NLL": v["forget"], "retain NLL": v["retain"], "holdout NLL": v["holdout"], "target reached": v["reached"]} for k, v in res["checkpoints"].items()]
    parts = [f"<p>Method <b>{res['method']}</b>; before unlearning: forget {res['base_losses']['forget']:.3f}, retain {res['base_losses']['retain']:.3f}, holdout {res['base_losses']['holdout']:.3f} (mean NLL). "
             f"Checkpoints are saved when the forget loss reaches each multiple of {_stop_text(res)}; <code>model/</code> is the strongest ({res['strongest']}). Retain and holdout losses during training are logged on fixed random subsets of 256 samples.</p>", table(rows)]
    if (run / "figures/unlearning_losses.png").exists():
        parts.append(img(run / "figures/unlearning_losses.png", alt="losses during unlearning"))
    if res.get("verify_log"):
        v = res["verify_log"]
        parts.append(f"<h3>Verification during unlearning</h3><p>Every logged step: forgotten ({v[0]['n_forget']}) vs holdout ({v[0]['n_holdout']}) AUC of the loss attack and Min-K%, "
                     f"95% bootstrap intervals ({v[0]['n_boot']} resamples, seed {v[0]['seed']}); retain on the fixed subset.</p>")
        parts.append(table([{"step": e["step"], "loss AUC": e["loss_auc"], "95% CI": e["loss_auc_ci"], "Min-K% AUC": e["mink_auc"], "Min-K% 95% CI": e["mink_auc_ci"],
                             "forget NLL": e["forget_loss"], "retain NLL": e["retain_loss"], "holdout NLL": e["holdout_loss"]} for e in v]))
        if (run / "figures/unlearning_verify.png").exists():
            parts.append(img(run / "figures/unlearning_verify.png", alt="verification figures during unlearning"))
    return "\n".join(parts)
