"""``rotelab steer probe|generate|eval``: parse, validate, call the API, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import group, DeviceOpt, DtypeOpt, JsonOpt, ModelOpt, OutOpt, PickleOpt, QuietOpt, RemoteCodeOpt, SeedOpt, finish, open_model, open_run
from rotelab.errors import RotelabError

app = group("steer", help="Dynamic Mode Steering: a memorization probe and probe-driven activation steering.")

MemOpt = Annotated[Optional[Path], typer.Option("--mem", help="JSONL of memorized texts ('text' per line); needed when --model is not a testbed.")]
GenOpt = Annotated[Optional[Path], typer.Option("--gen", help="JSONL of novel texts ('text' per line); needed when --model is not a testbed.")]
ProbeDirOpt = Annotated[Path, typer.Option("--probe", help="A 'steer probe' run folder (probe.npz).")]
BlocksOpt = Annotated[Optional[str], typer.Option("--blocks", help="Dotted path of the decoder-block list when not found automatically (e.g. model.layers).")]
ModeOpt = Annotated[str, typer.Option("--mode", help="none | static | dynamic (alpha_t = alpha * p_mem) | gated (alpha where p_mem > tau).")]
AlphaOpt = Annotated[float, typer.Option("--alpha", help="alpha (static) or alpha_max (dynamic, gated), in units of |mu_gen - mu_mem|.")]
TauOpt = Annotated[float, typer.Option("--tau", help="Gated: steer only where p_mem > tau.")]
BetaOpt = Annotated[float, typer.Option("--beta", help="Self-contrastive logits z_s + beta*p_mem*(z_s - z_b); 0 = off.")]
DirectionOpt = Annotated[str, typer.Option("--direction", help="diffmean (mu_gen - mu_mem) | probe (-w, same length).")]


def _check_mem_gen(model: Path, mem: Path | None, gen: Path | None) -> Path | None:
    from rotelab.steering.workflows import is_testbed

    if is_testbed(model):
        return model
    if mem is None or gen is None:
        raise RotelabError(f"{model}: not a testbed folder (no splits/members.jsonl); give --mem FILE.jsonl and --gen FILE.jsonl")
    return None


@app.command()
def probe(
    model: ModelOpt,
    mem: MemOpt = None,
    gen: GenOpt = None,
    labels: Annotated[str, typer.Option("--labels", help="diversity (K sampled continuations) | exact (greedy == known continuation) | source (which file).")] = "diversity",
    k: Annotated[int, typer.Option("--k", help="Diversity: sampled continuations per prompt.")] = 8,
    tau_lo: Annotated[float, typer.Option("--tau-lo", help="Diversity D below: memorizing.")] = 0.4,
    tau_hi: Annotated[float, typer.Option("--tau-hi", help="Diversity D above: generalizing.")] = 0.6,
    prefix_tokens: Annotated[int, typer.Option("--prefix-tokens", help="Prompt length for long texts.")] = 32,
    suffix_tokens: Annotated[int, typer.Option("--suffix-tokens", help="Known continuation length for long texts.")] = 32,
    blocks: BlocksOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "float32",
    trust_remote_code: RemoteCodeOpt = False,
    allow_pickle: PickleOpt = False,
    seed: SeedOpt = 0,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Label prompts, fit a logistic probe per block, pick the block by held-out AUROC, check it causally."""
    from rotelab.steering.workflows import ProbeConfig, run_probe

    testbed = _check_mem_gen(model, mem, gen)
    cfg = ProbeConfig(labels=labels, k=k, tau_lo=tau_lo, tau_hi=tau_hi, prefix=prefix_tokens, suffix=suffix_tokens, blocks=blocks)
    cfg.validate()
    lm = open_model(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    run = open_run(out, "steer probe", dict(model=model, mem=mem, gen=gen, **cfg.__dict__), seed=seed)
    for name, f in (("mem", mem), ("gen", gen)):
        if f is not None:
            run.add_input(name, f)
    result = run_probe(lm, run, cfg, testbed=testbed, mem_file=mem, gen_file=gen, seed=seed, progress=not quiet)
    finish(run, result, as_json=json_out, quiet=quiet)


@app.command()
def generate(
    model: ModelOpt,
    probe_dir: ProbeDirOpt,
    prompt: Annotated[Optional[list[str]], typer.Option("--prompt", help="A prompt (repeatable).")] = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="JSONL of prompts ('text' per line).")] = None,
    mode: ModeOpt = "dynamic",
    alpha: AlphaOpt = 2.0,
    tau: TauOpt = 0.5,
    beta: BetaOpt = 0.0,
    direction: DirectionOpt = "diffmean",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens to generate (greedy).")] = 32,
    out: OutOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "float32",
    trust_remote_code: RemoteCodeOpt = False,
    allow_pickle: PickleOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Greedy steered generation; logs alpha_t and p_mem for every generated token."""
    from rotelab.core.data import read_jsonl
    from rotelab.steering.probe import Probe
    from rotelab.steering.steer import SteerConfig, Steering, generate as steer_generate

    texts = list(prompt or []) + ([s.text for s in read_jsonl(prompts)] if prompts else [])
    if not texts:
        raise RotelabError("give at least one --prompt TEXT or --prompts FILE.jsonl")
    cfg = SteerConfig(mode=mode, alpha=alpha, tau=tau, beta=beta, direction=direction)
    cfg.validate()
    pr = Probe.load(probe_dir)
    lm = open_model(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    run = open_run(out, "steer generate", dict(model=model, probe=probe_dir, max_new_tokens=max_new_tokens, **cfg.__dict__))
    ids = lm.tokenize(texts)
    g = steer_generate(lm, ids, max_new_tokens, Steering(pr, cfg), progress=not quiet)
    rows = [{"prompt": t, "completion": lm.detokenize(tok), "tokens": [lm.detokenize([x]) for x in tok], "alpha": a, "p_mem": p, "mean_alpha": sum(a) / len(a)}
            for t, tok, a, p in zip(texts, g.tokens, g.alpha, g.p_mem)]
    run.write_json("generations.json", {"config": cfg.__dict__, "site": pr.site, "rows": rows})
    finish(run, [{"prompt": r["prompt"], "completion": r["completion"], "mean_alpha": r["mean_alpha"]} for r in rows], as_json=json_out, quiet=quiet)


@app.command("eval")
def eval_(
    model: ModelOpt,
    probe_dir: ProbeDirOpt,
    mem: MemOpt = None,
    gen: GenOpt = None,
    static_alphas: Annotated[str, typer.Option("--static-alphas", help="Comma-separated static strengths.")] = "0.5,1,2,4",
    dynamic_alphas: Annotated[str, typer.Option("--dynamic-alphas", help="Comma-separated dynamic alpha_max.")] = "1,2,4,8",
    gated_alphas: Annotated[str, typer.Option("--gated-alphas", help="Comma-separated gated strengths.")] = "2,4",
    tau: TauOpt = 0.5,
    beta: Annotated[float, typer.Option("--beta", help="> 0 adds a dynamic + contrastive-logits condition.")] = 0.0,
    direction: DirectionOpt = "diffmean",
    out: OutOpt = None,
    device: DeviceOpt = None,
    dtype: DtypeOpt = "float32",
    trust_remote_code: RemoteCodeOpt = False,
    allow_pickle: PickleOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
):
    """Verbatim rate of held-out memorized prompts, held-out cross-entropy and paraphrase accuracy per steering mode."""
    from rotelab.steering.evaluate import EvalConfig, run_eval
    from rotelab.steering.probe import Probe
    from rotelab.steering.workflows import eval_sets

    def floats(name: str, s: str) -> tuple[float, ...]:
        try:
            return tuple(float(x) for x in s.split(",") if x.strip())
        except ValueError:
            raise RotelabError(f"{name} must be comma-separated numbers; got '{s}'") from None

    cfg = EvalConfig(floats("--static-alphas", static_alphas), floats("--dynamic-alphas", dynamic_alphas), floats("--gated-alphas", gated_alphas), tau=tau, contrastive_beta=beta, direction=direction)
    testbed = _check_mem_gen(model, mem, gen)
    pr = Probe.load(probe_dir)
    lm = open_model(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    run = open_run(out, "steer eval", dict(model=model, probe=probe_dir, mem=mem, gen=gen, **cfg.__dict__))
    result = run_eval(lm, pr, run, cfg, **eval_sets(lm, probe_dir, testbed, mem, gen), progress=not quiet)
    finish(run, {k: result[k] for k in ("site", "n_mem", "n_ce_texts", "n_paraphrases", "goal")} | {"rows": [_short(r) for r in result["rows"]]}, as_json=json_out, quiet=quiet)


def _short(r: dict) -> dict:
    return {"condition": r["condition"], "verbatim_rate": r["verbatim"]["rate"], "ce": r["ce"], "ce_change": r.get("ce_change"), "paraphrase_accuracy": r["paraphrase_accuracy"]["rate"]}
