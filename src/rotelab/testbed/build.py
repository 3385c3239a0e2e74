"""``rotelab testbed build``: splits, tokenizer, model, reference model, evaluation, manifest."""

from __future__ import annotations

import json
from dataclasses import asdict

from rotelab.core.data import write_jsonl
from rotelab.core.io import dumps, read_json
from rotelab.core.runs import RunFolder
from rotelab.core.training import new_model, save_model_dir, train_on_schedule, train_tokenizer
from rotelab.errors import RotelabError
from rotelab.testbed import corpora
from rotelab.testbed.presets import Preset
from rotelab.testbed.splits import check_contract, in_training_order, make_splits, read_splits


def _tokenize(tokenizer, texts: list[str], max_len: int) -> list[list[int]]:
    return [x[:max_len] for x in tokenizer(texts)["input_ids"]]


def build_testbed(preset: Preset, run: RunFolder, *, seed: int, progress: bool = True) -> dict:
    """Build (or resume) a testbed in ``run.path``; returns the evaluation figures."""
    from transformers import PreTrainedTokenizerFast

    from rotelab.testbed.evaluate import evaluate_testbed
    from rotelab.testbed.report import plot_eval
    out = run.path
    spec = json.loads(dumps({"name": preset.name, **asdict(preset)}))
    if run.manifest.get("steps_done") and run.manifest.get("preset") not in (None, spec):
        raise RotelabError(f"{out}: was built with a different '{preset.name}' preset (an older rotelab?); use another --out or delete the folder")
    run.manifest["preset"] = spec
    run.manifest["provenance"] = {b: corpora.provenance()[f"{b}.txt"] for b in preset.books}
    run.save_manifest()

    def do_splits():
        splits = make_splits(preset, seed=seed)
        check_contract(splits)
        for name, rows in splits.items():
            write_jsonl(out / "splits" / f"{name}.jsonl", rows)
        trained = in_training_order(splits["members"], splits["member_prefix_pool"])
        run.manifest["sizes"] = {k: len(v) for k, v in splits.items()} | {"member_exposures": sum(s["copies"] for s in trained)}
        run.save_manifest()

    run.step("splits", do_splits)
    splits = read_splits(out)
    trained = in_training_order(splits["members"], splits["member_prefix_pool"])  # every trained sample, in training order

    def do_tokenizer():
        texts = [s["text"] for s in trained] + [s["text"] for k in ("nonmembers", "reference", "prefix_pool") for s in splits[k]]
        tok = train_tokenizer(texts, vocab_size=preset.model.vocab_size)
        tok.save_pretrained(out / "tokenizer")

    run.step("tokenizer", do_tokenizer)
    tok = PreTrainedTokenizerFast.from_pretrained(out / "tokenizer")
    L = preset.model.n_positions

    def train(rows: list[dict], label: str, seed_offset: int) -> dict:
        model = new_model(preset.model, seed=seed + seed_offset)
        spec = preset.train.__class__(**{**asdict(preset.train), "seed": seed + seed_offset})
        log = train_on_schedule(model, _tokenize(tok, [s["text"] for s in rows], L), [s["copies"] for s in rows], spec, progress=progress, label=label)
        save_model_dir(model, tok, out / label)
        log["n_parameters"] = sum(p.numel() for p in model.parameters())
        run.manifest.setdefault("training", {})[label] = log
        run.save_manifest()
        return log

    run.step("model", lambda: train(trained, "model", 0))

    def do_reference():
        # Same number of exposures as the target model, on disjoint text of the same kind.
        ref = splits["reference"]
        total = sum(s["copies"] for s in trained)
        k = max(1, round(total / sum(s["copies"] for s in ref)))
        train([dict(s, copies=s["copies"] * k) for s in ref], "reference", 1000)

    run.step("reference", do_reference)

    def do_eval():
        from rotelab.core.models import load_model

        lm = load_model(out / "model")
        prefix = suffix = 32 if L >= 65 else (L - 1) // 2
        # What the model memorized, over every trained sample (the member prefix pool included).
        res = evaluate_testbed(lm, splits | {"members": trained}, prefix=prefix, suffix=suffix, progress=progress)
        run.write_json("eval.json", res)
        plot_eval(run, res)
        run.manifest["eval"] = res
        run.save_manifest()

    run.step("eval", do_eval)
    return read_json(out / "eval.json")
