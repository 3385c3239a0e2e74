"""``rotelab entropy train``: a testbed-preset GPT-2 trained on shipped books with CE or GAPT.

Passages of the preset's books are split (seeded) into train and held-out text; a tokenizer is
trained on the train passages; the model is trained for ``steps`` steps (equal token budget
for both objectives at the same seed) and evaluated on held-out text: mean token CE and MBE per
layer. Re-running into the same folder resumes finished steps (same options only: see
:func:`rotelab.entropy.api.train`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from rotelab.core.io import read_json
from rotelab.core.runs import RunFolder
from rotelab.entropy.gapt_train import GaptConfig, sequence_batches, train_gapt
from rotelab.entropy.mbe import patch_mbe
from rotelab.errors import RotelabError


@dataclass(frozen=True)
class LMTrainConfig:
    preset: str = "tiny"
    gapt: GaptConfig = GaptConfig()
    n_layer: int | None = None  # None: the preset's; GAPT skips first and last block, so >= 3 helps
    batch_size: int = 16
    heldout_share: float = 0.1
    max_passages: int | None = None  # None: every passage of the preset's books
    seed: int = 0

    def validate(self) -> None:
        """Every value checked, in one line naming the command's option, before anything is written."""
        from rotelab.testbed.presets import get_preset

        get_preset(self.preset)
        if self.n_layer is not None and self.n_layer < 1:
            raise RotelabError(f"--n-layer must be >= 1; got {self.n_layer}")
        if self.batch_size < 1:
            raise RotelabError(f"--batch-size must be >= 1; got {self.batch_size}")
        if self.max_passages is not None and self.max_passages < 10:
            raise RotelabError(f"--max-passages must be >= 10; got {self.max_passages}")
        if not 0 < self.heldout_share < 1:
            raise RotelabError(f"heldout_share must be in (0, 1); got {self.heldout_share}")
        self.gapt.validate()


def book_passages(books: tuple[str, ...], words: int, *, seed: int, heldout_share: float, max_passages: int | None) -> dict[str, list[str]]:
    from rotelab.testbed.corpora import load_book, passages

    ps = [p for b in books for p in passages(load_book(b), words=words)]
    random.Random(seed).shuffle(ps)
    ps = ps[:max_passages] if max_passages else ps
    k = max(1, int(len(ps) * heldout_share))
    return {"heldout": ps[:k], "train": ps[k:]}


@torch.no_grad()
def evaluate_lm(model, token_ids: list[list[int]], *, batch_size: int = 32, patch: int = 8) -> dict[str, Any]:
    """Held-out mean token CE and per-layer MBE (mean over all valid patches)."""
    from rotelab.core.training import collate

    model.eval()
    nll = n_tok = 0.0
    sums: np.ndarray | None = None
    counts: np.ndarray | None = None
    for b in range(0, len(token_ids), batch_size):
        x, mask, labels = collate(token_ids[b : b + batch_size], 0)
        out = model(input_ids=x, attention_mask=mask, labels=labels, output_hidden_states=True)
        k = int((labels[:, 1:] != -100).sum())
        nll, n_tok = nll + out.loss.item() * k, n_tok + k
        per_seq = torch.stack([patch_mbe(h, patch=patch, mask=mask, reduce=False) for h in out.hidden_states], 1)  # (B, L+1)
        ok = torch.isfinite(per_seq)
        s, c = torch.where(ok, per_seq, 0).sum(0).numpy(), ok.sum(0).numpy()
        sums, counts = (s, c) if sums is None else (sums + s, counts + c)
    return {"heldout_ce": nll / n_tok, "heldout_tokens": int(n_tok), "mbe_layers": (sums / np.maximum(counts, 1)).tolist(), "n_sequences": len(token_ids)}


def train_lm(cfg: LMTrainConfig, run: RunFolder, *, progress: bool = True) -> dict[str, Any]:
    """Data, tokenizer, training and held-out evaluation as resumable steps of ``run``;
    returns ``entropy_train.json``'s content."""
    from transformers import PreTrainedTokenizerFast

    from rotelab.core.training import new_model, save_model_dir, train_tokenizer
    from rotelab.testbed.presets import get_preset

    p = get_preset(cfg.preset)
    spec = replace(p.model, n_layer=cfg.n_layer or p.model.n_layer)
    out = run.path

    def do_data():
        texts = book_passages(p.books, p.passage_words, seed=cfg.seed, heldout_share=cfg.heldout_share, max_passages=cfg.max_passages)
        run.write_json("passages.json", texts)
        train_tokenizer(texts["train"], vocab_size=spec.vocab_size).save_pretrained(out / "tokenizer")

    run.step("data", do_data)
    texts = read_json(out / "passages.json")
    tok = PreTrainedTokenizerFast.from_pretrained(out / "tokenizer")
    ids = {k: [x[: spec.n_positions] for x in tok(v)["input_ids"]] for k, v in texts.items()}

    def do_train():
        model = new_model(spec, seed=cfg.seed)
        res = train_gapt(model, sequence_batches(ids["train"], cfg.batch_size, seed=cfg.seed), cfg.gapt, progress=progress, label=f"{cfg.gapt.objective} training")
        save_model_dir(model, tok, out / "model")
        run.write_parquet("steps.parquet", {k: [r[k] for r in res["steps"]] for k in res["steps"][0]})
        run.write_json("train.json", {k: v for k, v in res.items() if k != "steps"} | {"n_parameters": sum(q.numel() for q in model.parameters())})

    run.step("train", do_train)

    def do_eval():
        from transformers import AutoModelForCausalLM

        from rotelab.core.runs import read_parquet
        from rotelab.entropy.figures import timeline_figure

        model = AutoModelForCausalLM.from_pretrained(out / "model")
        res = evaluate_lm(model, ids["heldout"], patch=cfg.gapt.patch)
        # CE on as many (seeded) training passages: the generalisation gap compression could close
        sub = random.Random(cfg.seed).sample(ids["train"], min(len(ids["train"]), len(ids["heldout"])))
        res["train_ce"] = evaluate_lm(model, sub, patch=cfg.gapt.patch)["heldout_ce"]
        tr = read_json(out / "train.json")
        steps = read_parquet(out / "steps.parquet")
        rows = [dict(zip(steps, vals)) for vals in zip(*steps.values())]
        run.figure("entropy_timeline", timeline_figure({cfg.gapt.objective: rows}, title=f"preset {cfg.preset}, seed {cfg.seed}, {len(rows)} steps, {tr['tokens']} tokens"))
        summary = {"objective": cfg.gapt.objective, "preset": cfg.preset, "n_layer": spec.n_layer, "seed": cfg.seed, "steps": cfg.gapt.steps,
                   "train_tokens": tr["tokens"], "n_train_passages": len(ids["train"]), "switches": tr["switches"],
                   "share_steps_compress": float(np.mean(np.asarray(steps["phase"]) == 2)), "final_phase": int(steps["phase"][-1]), **res}
        run.write_json("entropy_train.json", summary)

    run.step("eval", do_eval)
    return read_json(out / "entropy_train.json")

