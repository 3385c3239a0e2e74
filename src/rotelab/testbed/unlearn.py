"""Unlearning with ground truth: gradient ascent, gradient difference, NPO, and the retrain control.

Objectives (minimised; F = forget, R = retain; log pi(y|x) = summed token log-prob of a sample):

    GA        L = E_F[ log pi_theta(y|x) ] / |y|                           (mean token log-lik)
    GradDiff  L = gamma * L_GA(F) + alpha * NLL(R)                          gamma = alpha = 1
    NPO       L = (2 / beta) E_F[ log(1 + (pi_theta(y|x) / pi_ref(y|x))^beta) ] + alpha * NLL(R)
              beta = 0.1, pi_ref = a frozen copy of the starting model (Zhang et al. 2024)

Strengths are defined by outcome, not steps: a checkpoint is saved when the forget loss first
reaches 1.0x and 1.5x the starting model's holdout loss (or at the step cap, recorded as such).
The retrain control trains from scratch on ``retain`` only (the gold standard of unlearning).
"""

from __future__ import annotations

import copy
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from rotelab.core.runs import RunFolder
from rotelab.core.io import read_json
from rotelab.errors import RotelabError

METHODS = ("ga", "graddiff", "npo", "retrain")
STRENGTHS = (1.0, 1.5)


@dataclass(frozen=True)
class UnlearnConfig:
    method: str = "npo"
    lr: float = 1e-4
    batch_size: int = 16
    max_steps: int = 1000
    eval_every: int = 10  # full forget/retain/holdout log; the forget loss is checked every step
    beta: float = 0.1  # NPO
    retain_weight: float = 1.0  # alpha
    forget_weight: float = 1.0  # gamma
    seed: int = 0
    eval_samples: int = 256  # retain / holdout losses are logged on a fixed random subset of this size


def _batch(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from rotelab.core.training import collate

    return collate(ids, 0)


def seq_logprob(model, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: summed token log-prob (B,) and number of predicted tokens (B,)."""
    logits = model(input_ids=x, attention_mask=mask).logits[:, :-1]  # (B, T-1, V)
    tgt, m = x[:, 1:], mask[:, 1:].float()
    lp = -F.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")  # (B, T-1)
    return (lp * m).sum(-1), m.sum(-1)


def npo_loss(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """(2/beta) mean log(1 + exp(beta (logp - logp_ref))) = -(2/beta) mean log sigmoid(-beta (...))."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - logp_ref)).mean()


@torch.no_grad()
def mean_nll(model, ids: list[list[int]], batch_size: int = 64) -> float:
    """Mean over samples of the per-sample mean token NLL (the loss the strengths refer to)."""
    model.eval()
    out = []
    for b in range(0, len(ids), batch_size):
        x, mask, _ = _batch(ids[b : b + batch_size])
        s, n = seq_logprob(model, x, mask)
        out.extend((-s / n).tolist())
    return float(sum(out) / len(out))


def validate(testbed: Path, cfg: UnlearnConfig) -> None:
    """One-line errors for a wrong folder or option, before anything is written."""
    testbed = Path(testbed)
    if not (testbed / "model" / "config.json").exists() or not (testbed / "splits" / "forget.jsonl").exists():
        raise RotelabError(f"{testbed}: not a testbed folder (needs model/ and splits/; build one with 'rotelab testbed build')")
    if cfg.method not in METHODS:
        raise RotelabError(f"--method must be one of {', '.join(METHODS)}; got '{cfg.method}'")
    if cfg.lr <= 0 or cfg.max_steps < 1 or cfg.beta <= 0:
        raise RotelabError(f"--lr, --max-steps and --beta must be positive; got {cfg.lr}, {cfg.max_steps}, {cfg.beta}")


def unlearn(testbed: Path, cfg: UnlearnConfig, run: RunFolder, *, progress: bool = True) -> dict:
    """Run one unlearning method on a testbed; writes model/, checkpoints/<strength>/, the log."""
    from rich.progress import Progress
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    from rotelab.core.training import save_model_dir
    from rotelab.testbed.build import read_splits
    from rotelab.testbed.report import plot_unlearning

    testbed = Path(testbed)
    validate(testbed, cfg)
    splits = read_splits(testbed)
    tok = PreTrainedTokenizerFast.from_pretrained(testbed / "model")
    L = AutoModelForCausalLM.from_pretrained(testbed / "model").config.n_positions

    def ids(rows):
        return [x[:L] for x in tok([r["text"] for r in rows])["input_ids"]]

    forget, retain, holdout = ids(splits["forget"]), ids(splits["retain"]), ids(splits["holdout"])
    pick = random.Random(cfg.seed + 7)
    retain_eval = pick.sample(retain, min(cfg.eval_samples, len(retain)))
    holdout_eval = pick.sample(holdout, min(cfg.eval_samples, len(holdout)))
    run.manifest["testbed"] = str(testbed.resolve())
    run.manifest["splits"] = {k: str((testbed / "splits" / f"{k}.jsonl").resolve()) for k in ("forget", "retain", "holdout", "members", "nonmembers", "paraphrases", "canaries", "prefix_pool")}
    run.manifest["config"] = asdict(cfg)
    run.save_manifest()
    if cfg.method == "retrain":
        return _retrain(testbed, splits, tok, run, progress=progress)

    torch.manual_seed(cfg.seed)
    model = AutoModelForCausalLM.from_pretrained(testbed / "model")
    ref = copy.deepcopy(model).eval() if cfg.method == "npo" else None
    base = {"forget": mean_nll(model, forget), "retain": mean_nll(model, retain_eval), "holdout": mean_nll(model, holdout)}
    targets = {f"{s:.1f}x": s * base["holdout"] for s in STRENGTHS}
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    rng = random.Random(cfg.seed)
    log = [{"step": 0, **base}]
    saved: dict[str, dict] = {}
    step = 0
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"unlearning ({cfg.method})", total=cfg.max_steps)
        while step < cfg.max_steps and len(saved) < len(targets):
            model.train()
            fb = _batch(rng.sample(forget, min(cfg.batch_size, len(forget))))
            s, n = seq_logprob(model, fb[0], fb[1])
            if cfg.method == "npo":
                with torch.no_grad():
                    s_ref, _ = seq_logprob(ref, fb[0], fb[1])
                loss = cfg.forget_weight * npo_loss(s, s_ref, cfg.beta)
            else:
                loss = cfg.forget_weight * (s / n).mean()  # gradient ascent on the NLL
            if cfg.method in ("graddiff", "npo"):
                rb = _batch(rng.sample(retain, min(cfg.batch_size, len(retain))))
                sr, nr = seq_logprob(model, rb[0], rb[1])
                loss = loss + cfg.retain_weight * (-(sr / nr).mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            bar.advance(task)
            f_loss = mean_nll(model, forget)
            crossed = [name for name, target in targets.items() if name not in saved and f_loss >= target]
            if crossed or step % cfg.eval_every == 0 or step == cfg.max_steps:
                cur = {"step": step, "forget": f_loss, "retain": mean_nll(model, retain_eval), "holdout": mean_nll(model, holdout_eval)}
                log.append(cur)
                for name in crossed:
                    save_model_dir(model, tok, _ckpt_dir(run, name))
                    saved[name] = cur | {"target_forget_loss": targets[name], "reached": True}
    if len(saved) < len(targets):  # step cap: keep the last state as the strongest, say so
        save_model_dir(model, tok, _ckpt_dir(run, "cap"))
        saved["cap"] = log[-1] | {"reached": False, "note": f"forget loss never reached {max(targets.values()):.3f} within {cfg.max_steps} steps"}
    strongest = list(saved)[-1]
    save_model_dir(model if strongest == "cap" else AutoModelForCausalLM.from_pretrained(_ckpt_dir(run, strongest)), tok, run.path / "model")
    result = {"method": cfg.method, "base_losses": base, "targets": targets, "checkpoints": saved, "strongest": strongest, "steps": step, "log": log}
    run.write_json("unlearn.json", result)
    plot_unlearning(run, result)
    return result


def _ckpt_dir(run: RunFolder, name: str) -> Path:
    d = run.path / "checkpoints" / name
    d.parent.mkdir(parents=True, exist_ok=True)
    return d


def _retrain(testbed: Path, splits: dict, tok, run: RunFolder, *, progress: bool) -> dict:
    """Train from scratch on ``retain`` only, with the testbed's preset and seed."""
    from dataclasses import fields

    from rotelab.core.training import save_model_dir
    from rotelab.core.training import ModelSpec, TrainSpec, new_model, train_on_schedule

    m = read_json(testbed / "manifest.json")
    p = m["preset"]
    spec_m = ModelSpec(**{f.name: p["model"][f.name] for f in fields(ModelSpec)})
    spec_t = TrainSpec(**{f.name: p["train"][f.name] for f in fields(TrainSpec)})
    seed = m.get("seed") or 0
    model = new_model(spec_m, seed=seed)
    ids = [x[: spec_m.n_positions] for x in tok([r["text"] for r in splits["retain"]])["input_ids"]]
    log = train_on_schedule(model, ids, [r["copies"] for r in splits["retain"]], TrainSpec(**{**asdict(spec_t), "seed": seed}), progress=progress, label="retrain on retain")
    save_model_dir(model, tok, run.path / "model")
    L = spec_m.n_positions

    def sid(k):
        return [x[:L] for x in tok([r["text"] for r in splits[k]])["input_ids"]]

    losses = {k: mean_nll(model, sid(k)) for k in ("forget", "retain", "holdout")}
    result = {"method": "retrain", "losses": losses, "training": log, "strongest": "model"}
    run.write_json("unlearn.json", result)
    return result
