"""What each ``rotelab diffusion`` command does inside an open run folder: steps (resumable), results
(JSON / Parquet / safetensors records) and figures. The maths lives in the modules these call; the
entry points that validate inputs and open the folder are in :mod:`rotelab.diffusion.api`.

Files named after items go through :func:`rotelab.core.io.safe_filename`; nothing here reads a pickle."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from rotelab.core import console
from rotelab.core.io import read_json, safe_filename, write_json
from rotelab.core.runs import RunFolder
from rotelab.diffusion import detect as det
from rotelab.diffusion import dori as dr
from rotelab.diffusion import figures, locality, nemo, store, wanda
from rotelab.diffusion.dori import DoriConfig, init_embedding
from rotelab.diffusion.evaluate import heldout_loss, item_tensors, replication_of
from rotelab.diffusion.mitigate import Mitigation, controls_for_calibration, load_mitigation
from rotelab.diffusion.model import DiffusionModel
from rotelab.diffusion.replication import per_prompt_rates, rate, rate_curve


def _bar(progress: bool):
    return console.progress(disable=not progress)


def _with_images(items: list[dict]) -> list[dict]:
    return [it for it in items if "image" in it]


def _replication_block(run: RunFolder, name: str, model, items, ys, pix, seeds, threshold, contexts=()) -> dict:
    sims, imgs = replication_of(model, ys, pix, seeds, contexts=contexts)
    run.write_json(f"{name}.json", {"ids": [it["id"] for it in items], "labels": [it["label"] for it in items], "sims": sims,
                                     "seeds": list(seeds), "threshold": threshold})
    run.figure(f"{name}_grid", figures.image_grid(pix, imgs, sims, [it["id"] for it in items], title=f"{name}: {len(seeds)} seeds per prompt", threshold=threshold))
    return {"sims": sims, "rate": rate(sims, threshold), "per_prompt": per_prompt_rates(sims, threshold), "curve": rate_curve(sims)}


def run_detect(run: RunFolder, model: DiffusionModel, items: list[dict], *, n_noises: int = 8, n_seeds: int = 4,
               threshold: float = 0.7, progress: bool = True) -> dict:
    """Wen et al. AUC, per-token triggers of memorized prompts, replication rates per prompt."""
    def wen():
        r = det.detect(model, items, seeds=range(n_noises), progress=progress)
        run.write_parquet("wen.parquet", {"id": [it["id"] for it in items], "label": r["labels"], "score": r["scores"]})
        run.figure("wen_hist", figures.score_hist(r["scores"], r["labels"], title=f"Wen et al. d, first DDIM step, {n_noises} noises"))
        tokens = {}
        for it in items:
            if it["label"] == 1:
                ids, g = det.token_attribution(model, it["text"], seeds=range(n_noises))
                tokens[it["id"]] = {"token_ids": ids, "strength": g}
        run.write_json("detect.json", {"summary": r["summary"], "n_noises": n_noises, "tokens": tokens})
    run.step("wen", wen)
    out = {"wen": read_json(run.file("detect.json"))["summary"]}
    imgd = _with_images(items)
    if imgd:
        def repl():
            pix, _, ys = item_tensors(model, imgd)
            r = _replication_block(run, "replication", model, imgd, ys, pix, range(n_seeds), threshold)
            lab = np.array([it["label"] for it in imgd])
            run.figure("replication_curve", figures.rate_curves({"memorized": r["sims"][lab == 1], "not memorized": r["sims"][lab == 0]},
                                                                title="memorization rate vs threshold", seeds_note=f"{n_seeds} seeds per prompt"))
        run.step("replication", repl)
        d = read_json(run.file("replication.json"))
        sims, lab = np.array(d["sims"]), np.array(d["labels"])
        out["replication"] = {g: rate(sims[lab == v], threshold) for g, v in (("memorized", 1), ("not_memorized", 0)) if (lab == v).any()}
    return out


def _heldout(model, items) -> float | None:
    held = [it for it in _with_images(items) if it.get("split") == "unseen"]
    if not held:
        return None
    _, x0, ys = item_tensors(model, held)
    return heldout_loss(model, x0, ys)


def run_mitigate(run: RunFolder, model: DiffusionModel, items: list[dict], mitigation: Mitigation, *, n_seeds: int = 4, threshold: float = 0.7,
                 progress: bool = True) -> dict:
    """Find ``mitigation`` for the memorized prompts (label 1), save it, and measure replication of
    those prompts before and after, the held-out loss before and with every selection deployed, and
    the method's diagnostics (IoU of pruning selections)."""
    mem = [it for it in _with_images(items) if it["label"] == 1]
    pix, x0, ys = item_tensors(model, mem)
    seeds = range(n_seeds)
    loss_before = _heldout(model, items)
    run.step("before", lambda: _replication_block(run, "before", model, mem, ys, pix, seeds, threshold))

    def select() -> None:
        mitigation.select(model, items, run=run, threshold=threshold, progress=progress)
        mitigation.save(run.path)
        s = mitigation.summary()
        run.write_json("mitigation_summary.json", {"method": mitigation.name, "tau": s["tau_signal"], "rows": s["selection"]})
    run.step("select", select)
    m = load_mitigation(run.path)
    evaluated = m.mitigated(model)
    ctx = [lambda it=it: m.apply(evaluated, it["id"]) for it in mem]
    run.step("after", lambda: _replication_block(run, "after", evaluated, mem, ys, pix, seeds, threshold, contexts=ctx))
    with m.deploy(evaluated):  # held-out cost of deploying every per-prompt selection at once
        loss_after = _heldout(evaluated, items)
    b, a = (np.array(read_json(run.file(f"{k}.json"))["sims"]) for k in ("before", "after"))
    result = {"method": m.name, "n_prompts": len(mem), "n_seeds": n_seeds, "threshold": threshold,
              "before": rate(b, threshold), "after": rate(a, threshold), "mean_similarity_before": float(b.mean()), "mean_similarity_after": float(a.mean()),
              "heldout_loss_before": loss_before, "heldout_loss_after": loss_after,
              "prompts_mitigated": int((per_prompt_rates(a, threshold) < 0.5).sum()), "iou": m.diagnostics(model, items, ys), **m.summary()}
    run.write_json("result.json", result)
    run.figure("mitigate_curve", figures.rate_curves({"before": b, f"after {m.name}": a}, title=f"replication of memorized prompts, {m.name}",
                                                     seeds_note=f"{len(mem)} prompts x {n_seeds} seeds"))
    return result


def dori_files(folder: Path, item_id: str) -> tuple[Path, Path]:
    """(record, JSON) of one item's DoRI results in a ``diffusion dori`` run folder; the name comes
    from :func:`~rotelab.core.io.safe_filename`, so no id can point outside ``folder/dori``."""
    stem = Path(folder) / "dori" / safe_filename(item_id)
    return stem.with_suffix(".safetensors"), stem.with_suffix(".json")


def read_dori(folder: Path, item_id: str) -> dict:
    """One item's DoRI results: sims (starts, seeds), losses (starts, steps), dist_from_init."""
    return read_json(dori_files(folder, item_id)[1])


def run_dori(run: RunFolder, model: DiffusionModel, items: list[dict], *, mitigation: Mitigation | None = None, init: str = "prompt",
             starts: int = 1, cfg: DoriConfig = DoriConfig(), threshold: float = 0.7, seed: int = 0, progress: bool = True) -> dict:
    """DoRI toward every item with an image (memorized and controls), under the item's mitigation."""
    import contextlib

    targets = _with_images(items)
    pix, x0, ys = item_tensors(model, targets)
    run.file("dori").mkdir(exist_ok=True)
    with _bar(progress) as bar:
        task = bar.add_task("DoRI", total=len(targets) * starts)
        for i, it in enumerate(targets):
            def one(i=i, it=it):
                res = []
                for s in range(starts):
                    y0 = init_embedding(init, ys[i], other_y=ys[(i + 1 + s) % len(ys)], seed=seed * 1000 + i * 37 + s)
                    with mitigation.apply(model, it["id"]) if mitigation is not None else contextlib.nullcontext():
                        r = dr.run_dori(model, x0[i], pix[i], y0, cfg=cfg, seed=seed * 1000 + i * 37 + s)
                    res.append(r)
                    bar.advance(task)
                record, summary = dori_files(run.path, it["id"])
                store.save(record, {"images": torch.stack([r["images"] for r in res]), "y": torch.stack([r["y"] for r in res])})
                write_json(summary, {"id": it["id"], "sims": np.stack([r["sims"] for r in res]), "losses": np.stack([r["losses"] for r in res]),
                                     "dist_from_init": [r["dist_from_init"] for r in res]})
            if run.is_done(f"dori-{it['id']}"):
                bar.advance(task, starts)
            run.step(f"dori-{it['id']}", one)
    sims = np.stack([np.array(read_dori(run.path, it["id"])["sims"]).ravel() for it in targets])  # (P, starts*seeds)
    lab = np.array([it["label"] for it in targets])
    imgs = torch.stack([store.load(dori_files(run.path, it["id"])[0])["images"].flatten(0, 1) for it in targets])
    run.figure("dori_grid", figures.image_grid(pix, imgs, sims, [it["id"] for it in targets], title=f"DoRI ({init} init, {cfg.steps} steps)", threshold=threshold))
    groups = {g: sims[lab == v] for g, v in (("memorized", 1), ("not memorized", 0)) if (lab == v).any()}
    run.figure("dori_curve", figures.rate_curves(groups, title="replication after DoRI", seeds_note=f"{starts} starts x {cfg.n_eval_seeds} seeds per image"))
    result = {"init": init, "starts": starts, "config": asdict(cfg), "threshold": threshold, "mitigated": mitigation.name if mitigation else None,
              **{g: {**rate(s, threshold), "mean_similarity": float(s.mean()), "n_images": int(len(s)),
                     "images_restored": int((per_prompt_rates(s, threshold) >= 0.5).sum())} for g, s in groups.items()},
              "per_image": {it["id"]: float(per_prompt_rates(sims[i:i + 1], threshold)[0]) for i, it in enumerate(targets)}}
    run.write_json("result.json", result)
    return result


def run_locality(run: RunFolder, model: DiffusionModel, items: list[dict], item_id: str, *, starts: int = 16, cfg: DoriConfig = DoriConfig(),
                 threshold: float = 0.7, seed: int = 0, max_selections: int | None = None, progress: bool = True) -> dict:
    """Triggers from Gaussian starts for one memorized image: spread, activation discrepancy, IoU.

    ``max_selections``: run NeMo / Wanda selection on at most this many successful triggers (each
    selection costs tens of generations).
    """
    it = next(i for i in items if i["id"] == item_id)
    pix, x0, y = item_tensors(model, [it])
    all_y = model.embed([i["text"] for i in items])
    ctrl = controls_for_calibration(items, all_y)
    mem_y = all_y[[k for k, i in enumerate(items) if i["label"] == 1]]

    def search():
        res = []
        with _bar(progress) as bar:
            task = bar.add_task(f"DoRI x{starts}", total=starts)
            for s in range(starts):
                y0 = init_embedding("gaussian", y[0], seed=seed * 1000 + s)
                r = dr.run_dori(model, x0[0], pix[0], y0, cfg=cfg, seed=seed * 1000 + s)
                res.append({"y0": y0, **r})
                bar.advance(task)
        store.save(run.file("triggers.safetensors"), res)
    run.step("triggers", search)
    res = store.load(run.file("triggers.safetensors"))
    ok = [r for r in res if (r["sims"] > threshold).mean() >= 0.5]
    trig = torch.stack([r["y"] for r in ok]) if ok else torch.empty(0)
    out = {"item": item_id, "starts": starts, "successful_triggers": len(ok), "threshold": threshold}
    if len(ok) < 2:
        out["reason"] = f"{len(ok)} of {starts} starts replicated the image; locality needs at least 2 triggers"
        run.write_json("result.json", out)
        return out
    out["spread"] = {"triggers": float(locality.pairwise_l2(trig).mean()), "gaussian_starts": float(locality.pairwise_l2(torch.stack([r["y0"] for r in res])).mean()),
                     "distinct_ordinary_prompts": float(locality.pairwise_l2(ctrl).mean()),
                     "trigger_to_prompt": float((trig - y[0]).flatten(1).norm(dim=1).mean())}
    layers = locality.cross_attention_layers(model.unet)
    out["activation_discrepancy"] = {"triggers_same_image": locality.activation_discrepancy(model, trig, layers),
                                     "distinct_memorized_prompts": locality.activation_discrepancy(model, mem_y, layers) if len(mem_y) > 1 else None}

    def selections():
        cal = nemo.calibrate(model, ctrl)
        ref = wanda.reference_norms(model, ctrl)
        ne = [nemo.select_neurons(model, t, cal["stats"], cal["tau"], target=pix[0], rep_threshold=threshold) for t in trig[:max_selections]]
        wa = [wanda.select_weights(model, t, ref, cal["tau"], target=pix[0], rep_threshold=threshold) for t in trig[:max_selections]]
        prompt = {"nemo": nemo.select_neurons(model, y[0], cal["stats"], cal["tau"], target=pix[0], rep_threshold=threshold),
                  "wanda": wanda.select_weights(model, y[0], ref, cal["tau"], target=pix[0], rep_threshold=threshold)}
        store.save(run.file("selections.safetensors"), {"nemo": ne, "wanda": wa, "prompt": prompt, "tau": cal["tau"]})
    run.step("selections", selections)
    sel = store.load(run.file("selections.safetensors"))
    ne_sets = [locality.as_sets(r["selection"]) for r in sel["nemo"]]
    wa_sets = [locality.as_sets(r["weights"]) for r in sel["wanda"]]
    cross = []
    for t, s in zip(trig, ne_sets):
        wv = locality.wanda_value_neurons(model, t, ctrl, {n: len(v) for n, v in s.items()})
        cross.append(locality.iou({(n, k) for n, v in s.items() for k in v}, {(n, k) for n, v in wv.items() for k in v}))
    cv = np.array(cross, dtype=float)
    flat = lambda s: {(n, k) for n, v in s.items() for k in v}
    pn, pw = locality.as_sets(sel["prompt"]["nemo"]["selection"]), locality.as_sets(sel["prompt"]["wanda"]["weights"])
    vs_prompt = lambda sets, p: [locality.iou(flat(s), flat(p)) for s in sets]
    out["iou"] = {"nemo_across_triggers": locality.pairwise_iou(ne_sets), "wanda_across_triggers": locality.pairwise_iou(wa_sets),
                  "nemo_vs_wanda_value_neurons": float(np.nanmean(cv)) if (~np.isnan(cv)).any() else None,
                  "nemo_vs_wanda_value_neurons_per_trigger": cv,
                  "nemo_trigger_vs_prompt": vs_prompt(ne_sets, pn), "wanda_trigger_vs_prompt": vs_prompt(wa_sets, pw),
                  "nemo_neurons_per_trigger": [len(flat(s)) for s in ne_sets], "wanda_weights_per_trigger": [len(flat(s)) for s in wa_sets],
                  "nemo_prompt_neurons": len(flat(pn)), "wanda_prompt_weights": len(flat(pw)),
                  "nemo_mitigated": sum(r["mitigated"] for r in sel["nemo"]), "wanda_mitigated": sum(r["mitigated"] for r in sel["wanda"]),
                  "n_triggers": len(ne_sets)}
    run.figure("locality_triggers", figures.image_grid(pix.expand(len(res), -1, -1, -1), torch.stack([r["images"] for r in res]),
                                                       np.stack([r["sims"] for r in res]), [f"start {k}" for k in range(len(res))],
                                                       title=f"DoRI from {starts} Gaussian starts toward {item_id}", threshold=threshold))
    run.write_json("result.json", out)
    return out
