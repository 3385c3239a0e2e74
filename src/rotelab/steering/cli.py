"""``rotelab steer probe|generate|eval``: thin commands over :mod:`rotelab.steering.api` (parse,
build the config, call the API once, print)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import BatchOpt, ModelOpts, RunOpts, SeedOpt, command, emit_run, group
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


def _floats(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise RotelabError(f"{option} must be comma-separated numbers; got '{text}'") from None


@command(app, "probe")
def probe(
    model: ModelOpts,
    run: RunOpts,
    mem: MemOpt = None,
    gen: GenOpt = None,
    labels: Annotated[str, typer.Option("--labels", help="diversity (K sampled continuations) | exact (greedy == known continuation) | source (which file).")] = "diversity",
    k: Annotated[int, typer.Option("--k", help="Diversity: sampled continuations per prompt.")] = 8,
    tau_lo: Annotated[float, typer.Option("--tau-lo", help="Diversity D below: memorizing.")] = 0.4,
    tau_hi: Annotated[float, typer.Option("--tau-hi", help="Diversity D above: generalizing.")] = 0.6,
    prefix_tokens: Annotated[int, typer.Option("--prefix-tokens", help="Prompt length for long texts.")] = 32,
    suffix_tokens: Annotated[int, typer.Option("--suffix-tokens", help="Known continuation length for long texts.")] = 32,
    blocks: BlocksOpt = None,
    batch_size: BatchOpt = 64,
    seed: SeedOpt = 0,
):
    """Label prompts, fit a logistic probe per block, pick the block by held-out AUROC, check it causally."""
    from rotelab.steering.api import probe as api
    from rotelab.steering.workflows import ProbeConfig

    cfg = ProbeConfig(labels=labels, k=k, tau_lo=tau_lo, tau_hi=tau_hi, prefix=prefix_tokens, suffix=suffix_tokens, blocks=blocks, batch_size=batch_size)
    out = run.out_dir("steer probe")
    emit_run(api(model.path, mem=mem, gen=gen, out=out, config=cfg, seed=seed, load=model.load_options(), overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "generate")
def generate(
    model: ModelOpts,
    run: RunOpts,
    probe_dir: ProbeDirOpt,
    prompt: Annotated[Optional[list[str]], typer.Option("--prompt", help="A prompt (repeatable).")] = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="JSONL of prompts ('text' per line).")] = None,
    mode: ModeOpt = "dynamic",
    alpha: AlphaOpt = 2.0,
    tau: TauOpt = 0.5,
    beta: BetaOpt = 0.0,
    direction: DirectionOpt = "diffmean",
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Tokens to generate (greedy).")] = 32,
    batch_size: BatchOpt = 32,
):
    """Greedy steered generation; logs alpha_t and p_mem for every generated token."""
    from rotelab.core.data import read_jsonl
    from rotelab.steering.api import generate as api
    from rotelab.steering.steer import SteerConfig

    if not prompt and prompts is None:
        raise RotelabError("give at least one --prompt TEXT or --prompts FILE.jsonl")
    texts = prompts if not prompt else [*prompt, *(s.text for s in (read_jsonl(prompts, role="prompts") if prompts else []))]
    cfg = SteerConfig(mode=mode, alpha=alpha, tau=tau, beta=beta, direction=direction)
    out = run.out_dir("steer generate")
    emit_run(api(model.path, probe_dir, texts, out=out, config=cfg, max_new_tokens=max_new_tokens, batch_size=batch_size, load=model.load_options(),
                 overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "eval")
def eval_(
    model: ModelOpts,
    run: RunOpts,
    probe_dir: ProbeDirOpt,
    mem: MemOpt = None,
    gen: GenOpt = None,
    static_alphas: Annotated[str, typer.Option("--static-alphas", help="Comma-separated static strengths.")] = "0.5,1,2,4",
    dynamic_alphas: Annotated[str, typer.Option("--dynamic-alphas", help="Comma-separated dynamic alpha_max.")] = "1,2,4,8",
    gated_alphas: Annotated[str, typer.Option("--gated-alphas", help="Comma-separated gated strengths.")] = "2,4",
    tau: TauOpt = 0.5,
    beta: Annotated[float, typer.Option("--beta", help="> 0 adds a dynamic + contrastive-logits condition.")] = 0.0,
    direction: DirectionOpt = "diffmean",
    batch_size: BatchOpt = 64,
):
    """Verbatim rate of held-out memorized prompts, held-out cross-entropy and paraphrase accuracy per steering mode."""
    from rotelab.steering.api import eval_summary, evaluate
    from rotelab.steering.evaluate import EvalConfig

    cfg = EvalConfig(_floats("--static-alphas", static_alphas), _floats("--dynamic-alphas", dynamic_alphas), _floats("--gated-alphas", gated_alphas),
                     tau=tau, contrastive_beta=beta, direction=direction, batch_size=batch_size)
    out = run.out_dir("steer eval")
    result = evaluate(model.path, probe_dir, mem=mem, gen=gen, out=out, config=cfg, load=model.load_options(), overwrite=run.overwrite, progress=run.progress)
    emit_run(eval_summary(result), run, out)
