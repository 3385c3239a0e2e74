"""The extraction API and commands on bad or changed input: validated before the run folder exists,
one line naming the file or option, stale resumes refused, one JSON document with --json."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rotelab.cli import app
from rotelab.errors import RotelabError
from rotelab.extraction import api

runner = CliRunner()


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def members(tiny_splits):
    return [{"id": s["id"], "text": s["text"], "copies": s["copies"]} for s in tiny_splits["members"]]


def test_samples_rerun_on_other_data_is_refused_and_recomputed_with_overwrite(tiny_testbed, members, tmp_path):
    # issue 17: a re-run into the folder with a 20-line input reported the first run's 224 samples
    data, out = tmp_path / "d.jsonl", tmp_path / "run"
    args = ["extract", "samples", "--model", str(tiny_testbed), "--data", str(data), "--prefix-tokens", "16", "--suffix-tokens", "8", "--out", str(out), "--json", "--quiet"]
    _jsonl(data, members)
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["n_samples"] == len(members)
    _jsonl(data, members[:20])
    stale = runner.invoke(app, args)
    assert isinstance(stale.exception, RotelabError) and "computed from other inputs" in str(stale.exception) and "data changed" in str(stale.exception)
    again = runner.invoke(app, [*args, "--overwrite"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["n_samples"] == 20


def test_samples_in_memory_rerun_on_other_texts_is_refused(tiny_testbed, members, tmp_path):
    texts = [m["text"] for m in members[:12]]
    res = api.extract_samples(tiny_testbed, texts, out=tmp_path / "run", progress=False)
    assert res["n_samples"] == 12
    assert api.extract_samples(tiny_testbed, texts, out=tmp_path / "run", progress=False) == res  # same texts: resumed
    with pytest.raises(RotelabError, match="computed from other options"):
        api.extract_samples(tiny_testbed, texts[:5], out=tmp_path / "run", progress=False)


def test_samples_long_text_error_names_the_file_and_sample(tiny_testbed, members, tmp_path):
    data = _jsonl(tmp_path / "long.jsonl", members)
    r = runner.invoke(app, ["extract", "samples", "--model", str(tiny_testbed), "--data", str(data), "--long-text", "error", "--prefix-tokens", "16", "--suffix-tokens", "8", "--out", str(tmp_path / "run")])
    assert isinstance(r.exception, RotelabError)
    assert str(r.exception).startswith(f"{data}: sample '") and "> context 80 (choose --long-text truncate or window)" in str(r.exception)
    assert not (tmp_path / "run").exists()


def test_samples_long_texts_are_counted_in_the_manifest(tiny_testbed, members, tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", members[:40])
    r = runner.invoke(app, ["extract", "samples", "--model", str(tiny_testbed), "--data", str(data), "--prefix-tokens", "16", "--suffix-tokens", "8", "--out", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    note = json.loads((tmp_path / "run" / "manifest.json").read_text())["notes"]["long_text"]
    assert note["n_texts"] == 40 and 0 < note["n_long"] < 40 and note["max_length"] == 80
    assert "longer than the context" in r.stderr and json.loads(r.stdout)["n_samples"] == 40


def test_book_json_is_one_document_with_progress_bars_on(tiny_testbed, members, tmp_path):
    # issue 17: the autoregressive progress bar (a bare rich Progress) wrote to stdout
    book = tmp_path / "book.txt"
    book.write_text("\n".join(m["text"] for m in members[:30]))
    r = runner.invoke(app, ["extract", "book", "--model", str(tiny_testbed), "--book", str(book), "--mode", "autoregressive", "--suffix-tokens", "8", "--max-windows", "4",
                            "--trim-start", "0", "--trim-end", "0", "--out", str(tmp_path / "run"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["n_windows"] == 4


def test_book_rerun_on_an_edited_book_is_refused(tiny_testbed, members, tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("\n".join(m["text"] for m in members[:6]))
    kw = dict(out=tmp_path / "run", config=None, progress=False)
    from rotelab.extraction.book import BookConfig

    kw["config"] = BookConfig(suffix_tokens=8, max_windows=3)
    api.extract_book(tiny_testbed, book, **kw)
    book.write_text("\n".join(m["text"] for m in members[6:12]))
    with pytest.raises(RotelabError, match="book changed"):
        api.extract_book(tiny_testbed, book, **kw)


@pytest.mark.parametrize(
    "args, message",
    [
        (["samples", "--data", "{empty}"], "{empty}: no samples"),
        (["samples", "--data", "{data}", "--batch-size", "0"], "--batch-size must be >= 1; got 0"),
        (["samples", "--data", "{data}", "--dtype", "float8"], "--dtype must be one of float32, float16, bfloat16; got 'float8'"),
        (["book", "--book", "{empty_book}"], "{empty_book}: the book is empty"),
        (["book", "--book", "{book}", "--suffix-tokens", "80"], "--suffix-tokens 80 leaves no room for a prefix in the model's context of 80 tokens"),
        (["book", "--book", "{book}", "--stride", "0"], "--stride must be >= 1; got 0"),
        (["books-experiment", "--preset", "books-long"], "--preset books-long: has no held-back and other excerpts"),
        (["books-experiment", "--preset", "books-nope"], "unknown books preset 'books-nope'"),
        (["books-experiment", "--testbed", "{no_other}"], "excerpts.jsonl: needs held_back and other excerpts"),
        (["books-experiment", "--testbed", "{bad_copies}"], "excerpt 'a': field 'copies' must be an integer >= 0"),
    ],
)
def test_bad_input_is_one_line_before_any_run_folder(tiny_testbed, members, tmp_path, args, message):
    files = {
        "empty": tmp_path / "empty.jsonl", "data": _jsonl(tmp_path / "d.jsonl", members[:3]), "empty_book": tmp_path / "empty.txt",
        "book": tmp_path / "book.txt", "no_other": tmp_path / "tb1", "bad_copies": tmp_path / "tb2",
    }
    files["empty"].write_text("\n")
    files["empty_book"].write_text("  \n")
    files["book"].write_text(members[0]["text"] * 20)
    for name, rows in (("no_other", [{"id": "a", "book": "x", "text": "t", "copies": 4, "role": "held_back"}]), ("bad_copies", [{"id": "a", "book": "x", "text": "t", "copies": "4"}])):
        files[name].mkdir()
        _jsonl(files[name] / "excerpts.jsonl", rows)
    fill = {k: str(v) for k, v in files.items()}
    cmd = ["extract", *[a.format(**fill) for a in args], "--out", str(tmp_path / "run")]
    if args[0] in ("samples", "book"):
        cmd += ["--model", str(tiny_testbed)]
    r = runner.invoke(app, cmd)
    assert isinstance(r.exception, RotelabError), r.output
    assert message.format(**fill) in str(r.exception) and "\n" not in str(r.exception)
    assert not (tmp_path / "run").exists()


def test_weightdiff_refuses_bad_sources_before_any_run_folder(arch_dirs, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{oops")
    tuned = tmp_path / "tuned"
    shutil.copytree(arch_dirs["gpt2"], tuned)
    sd = load_file(tuned / "model.safetensors")
    sd["transformer.h.0.mlp.c_fc.weight"] = sd["transformer.h.0.mlp.c_fc.weight"][:, :8].contiguous()
    save_file(sd, tuned / "model.safetensors", metadata={"format": "pt"})
    cases = [
        (["--adapter", str(adapter)], f"{adapter / 'adapter_config.json'}:1: malformed JSON"),
        (["--adapter", str(tmp_path / "nope")], "not a folder"),
        (["--tuned", str(tuned)], "transformer.h.0.mlp.c_fc.weight: shape (32, 128) in --base but (32, 8) in --tuned"),
    ]
    for extra, message in cases:
        r = runner.invoke(app, ["weightdiff", "--base", str(arch_dirs["gpt2"]), *extra, "--out", str(tmp_path / "run")])
        assert isinstance(r.exception, RotelabError) and message in str(r.exception), (extra, r.output)
        assert not (tmp_path / "run").exists()


def test_bad_input_from_the_console_is_one_line_exit_2(tiny_testbed, tmp_path):
    book = tmp_path / "empty.txt"
    book.write_text("")
    r = subprocess.run([sys.executable, "-m", "rotelab.cli", "extract", "book", "--model", str(tiny_testbed), "--book", str(book), "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == f"error: {book}: the book is empty\n"
    assert not (tmp_path / "run").exists()


def test_every_extraction_model_command_takes_the_model_options():
    from rotelab.cli_common import ModelOpts
    from rotelab.extraction.cli import book, samples

    for fn in (book, samples):
        assert ModelOpts in fn.__rotelab_bundles__
    for cmd in ("book", "samples"):
        r = runner.invoke(app, ["extract", cmd, "--help"])
        assert "--long-text" in r.stdout and "--dtype" in r.stdout


def _imports(path: Path) -> set[str]:
    """Every rotelab module a file imports, at module level or inside functions."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rotelab"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("rotelab")}
    return out


def test_extraction_modules_import_no_cycle():
    import graphlib

    import rotelab.extraction as pkg

    root = Path(pkg.__file__).parent
    mods = {"rotelab.extraction." + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p for p in root.rglob("*.py")}
    graph = {m: {d for d in _imports(p) if d in mods and d != m} for m, p in mods.items()}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError on a cycle


def test_books_presets_are_registered_testbeds():
    from rotelab.testbed.presets import TESTBEDS

    assert {"books", "books-micro", "books-long"} <= set(TESTBEDS.names())
    assert "64/16/4/1/0 copies" in TESTBEDS["books"].doc
