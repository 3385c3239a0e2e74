"""Auditing through a real inference server and over Ray, measured side by side with local scoring.

Starts a vLLM CPU server (the virtualenv .ci/services builds: .venv-vllm) on the small testbed's
model, then on the same texts:
  - agreement: per-token log-probs and greedy hits, server vs local transformers fp32; Min-K%++
    moments from the whole distribution vs local; the top-k approximation's error;
  - attack AUCs (loss, zlib, Min-K%, Min-K%++) through the server vs local;
  - throughput: server scoring vs local scoring, both warmed up, repeats interleaved in alternating
    order, median ratio and its spread;
  - Ray: 2 local workers vs 1, the same way.
Writes bench/results/server.json.

    OMP_NUM_THREADS=1 python bench/server.py [--testbed runs/bench-speed/small-testbed] [--n 200]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def start_vllm(model_dir: Path, port: int, max_len: int) -> subprocess.Popen:
    py = ROOT / ".venv-vllm" / "bin" / "python"
    if not py.exists():
        sys.exit("no .venv-vllm: run `make test` once (its service stage builds it), or see .ci/services")
    log = open(ROOT / "bench" / "results" / "vllm-server.log", "w")
    p = subprocess.Popen([str(py), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir), "--served-model-name", "bench",
                          "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", str(max_len), "--max-logprobs", "-1"],
                         env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}, stdout=log, stderr=subprocess.STDOUT)
    import requests

    for _ in range(300):
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return p
        except requests.RequestException:
            pass
        time.sleep(1)
    p.kill()
    sys.exit("vLLM did not start; see bench/results/vllm-server.log")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(a, b, repeats: int) -> dict:
    """Median and spread of time(b) / time(a) over repeats run in alternating order."""
    a(), b()  # warm-up
    ta, tb = [], []
    for r in range(repeats):
        if r % 2 == 0:
            ta.append(timed(a)), tb.append(timed(b))
        else:
            tb.append(timed(b)), ta.append(timed(a))
    ratios = np.array(tb) / np.array(ta)
    return {"median_ratio": float(np.median(ratios)), "min": float(ratios.min()), "max": float(ratios.max()), "a_seconds": ta, "b_seconds": tb}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--testbed", type=Path, default=Path("runs/bench-speed/small-testbed"), help="a testbed (built with the small preset when missing)")
    ap.add_argument("--n", type=int, default=200, help="members and as many non-members")
    ap.add_argument("--n-full", type=int, default=5, help="texts per class scored with the whole distribution (slow)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--port", type=int, default=8021)
    a = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from rotelab.core.data import read_jsonl
    from rotelab.core.models import LoadOptions, load_model
    from rotelab.core.server import ServerOptions
    from rotelab.core.signals import compute_signals
    from rotelab.core.stats import summarize
    from rotelab.membership.attacks import loss_score, mink_score, minkpp_score, zlib_score

    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    if not (a.testbed / "eval.json").exists():
        from rotelab.testbed.api import build

        build("small", out=a.testbed, progress=False)
    sp = a.testbed / "splits"
    mem = [s.text for s in read_jsonl(sp / "members.jsonl") if s.meta.get("kind") == "book" and s.meta["copies"] >= 4][: a.n]
    non = [s.text for s in read_jsonl(sp / "nonmembers.jsonl") if s.meta.get("kind") == "book"][: len(mem)]
    texts, labels = mem + non, np.r_[np.ones(len(mem)), np.zeros(len(non))]
    ctx = json.loads((a.testbed / "model" / "config.json").read_text())["n_positions"]
    server = start_vllm(a.testbed / "model", a.port, ctx)
    try:
        opts = ServerOptions(f"http://127.0.0.1:{a.port}", "bench")
        local = load_model(a.testbed, max_length=ctx - 1)  # the server takes max_model_len - 1 prompt tokens
        remote = LoadOptions(server=opts).load(a.testbed)
        out: dict = {"testbed": str(a.testbed), "n_members": len(mem), "n_nonmembers": len(non), "context": ctx - 1, "conformance": remote.report}
        sl, sr = compute_signals(local, texts, progress=False), compute_signals(remote, texts, progress=False)
        out["agreement"] = {
            "max_abs_logp_diff": float(max(np.abs(x.logp - y.logp).max() for x, y in zip(sl, sr))),
            "top1_identical": bool(all((x.top1 == y.top1).all() for x, y in zip(sl, sr))),
            "n_tokens": int(sum(x.n_scored for x in sl)),
        }
        aucs = {}
        for name, f in (("loss", loss_score), ("zlib", None), ("mink", mink_score)):
            score = (lambda s, t: zlib_score(s, t)) if f is None else (lambda s, t, f=f: f(s))
            al = summarize(np.array([score(s, t) for s, t in zip(sl, texts)]), labels)
            ar = summarize(np.array([score(s, t) for s, t in zip(sr, texts)]), labels)
            aucs[name] = {"local": al["auc"], "server": ar["auc"], "diff": abs(al["auc"] - ar["auc"])}
        # Min-K%++ needs the moments: exact from the whole distribution, and the top-k approximation
        idx = list(range(a.n_full)) + list(range(len(mem), len(mem) + a.n_full))
        sub, ysub = [texts[i] for i in idx], labels[idx]
        full = LoadOptions(server=opts, server_moments="full").load(a.testbed)
        topk = LoadOptions(server=opts, server_moments="topk").load(a.testbed)
        t0 = time.perf_counter()
        sf = compute_signals(full, sub, progress=False)
        t_full = time.perf_counter() - t0
        st = compute_signals(topk, sub, progress=False)
        sloc = [sl[i] for i in idx]
        exact, approx, mine = (np.array([minkpp_score(s) for s in ss]) for ss in (sf, st, sloc))
        aucs["minkpp"] = {"local": summarize(mine, ysub)["auc"], "server_full": summarize(exact, ysub)["auc"], "server_topk20": summarize(approx, ysub)["auc"], "n_per_class": a.n_full}
        out["aucs"] = aucs
        out["minkpp"] = {
            "max_abs_score_diff_full_vs_local": float(np.abs(exact - mine).max()),
            "max_abs_mu_diff_full_vs_local": float(max(np.abs(x.mu - y.mu).max() for x, y in zip(sf, sloc))),
            "topk20_score_abs_error": {"median": float(np.median(np.abs(approx - exact))), "max": float(np.abs(approx - exact).max())},
            "topk20_mu_abs_error_median": float(np.median(np.concatenate([np.abs(x.mu - y.mu) for x, y in zip(st, sf)]))),
            "full_distribution_tokens_per_s": float(sum(s.n_scored for s in sf) / t_full),
        }
        out["throughput_server_over_local"] = interleaved(lambda: compute_signals(local, texts, progress=False), lambda: compute_signals(remote, texts, progress=False), a.repeats)
        out["throughput_server_over_local"]["tokens"] = out["agreement"]["n_tokens"]
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    one = LoadOptions(workers=1).load(a.testbed)
    two = LoadOptions(workers=2).load(a.testbed)
    big = texts * 3
    out["ray_two_over_one_worker"] = interleaved(lambda: compute_signals(one, big, progress=False), lambda: compute_signals(two, big, progress=False), a.repeats)
    (ROOT / "bench" / "results" / "server.json").write_text(json.dumps(out, indent=1))
    short = {k: v for k, v in out.items() if k not in ("conformance",)}
    for k in ("throughput_server_over_local", "ray_two_over_one_worker"):
        short[k] = {kk: vv for kk, vv in out[k].items() if not isinstance(vv, list)}
    print(json.dumps(short, indent=1))


if __name__ == "__main__":
    main()
