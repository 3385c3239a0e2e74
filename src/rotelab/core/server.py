"""A model behind an inference server: the query-only backend, and the conformance check run
before the first audit.

Protocol: OpenAI-compatible ``POST /v1/completions`` with token-id prompts and vLLM's
``prompt_logprobs`` extension (``echo`` + ``logprobs`` is keyed by token *text* and collapses
tokens with equal text: 1,921 of 2,048 on the small testbed, so it is not used). Each prompt
position but the first returns ``{token_id: {"logprob", "rank"}}`` for the given token, plus the
top-k (``prompt_logprobs: k``) or the whole distribution (``-1``, where the server allows it).

What a server offers is measured, not assumed (:func:`check_server`): that it returns prompt
log-probs at all (llama.cpp-style servers do not, and an audit would silently score at chance),
that its tokenizer splits texts as the local one does, how many top log-probs it allows, whether
its prefix cache changes answers, and (given a local copy) whether its values agree with it.

Requests are batched (``batch`` prompts per request), sent ``concurrency`` at a time, retried with
exponential backoff on connection errors and 429/5xx, rate-limited, with a timeout. An API key
comes only from ``$ROTELAB_API_KEY`` (never written anywhere); URLs are recorded without credentials.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from rotelab.core.access import Access
from rotelab.core.models import LanguageModel
from rotelab.core.signals import TokenSignals
from rotelab.errors import RotelabError

MOMENTS = ("none", "topk", "full")
# Probe texts of the conformance check: letters, digits, punctuation, accents, CJK, whitespace runs.
PROBES = (
    "The quick brown fox jumps over the lazy dog.",
    "In 1994, 42 people met at 7:30 p.m. -- didn't they?",
    "naïve café, façade; Zürich & São Paulo",
    "東京タワー and  two  spaces\tand a tab",
    "def f(x):\n    return x ** 2  # squares",
)


def public_url(url: str) -> str:
    """The URL without user, password, query or fragment: what a manifest may record.

    >>> public_url("https://user:secret@host:8000/v1?key=abc")
    'https://host:8000/v1'
    """
    u = urlsplit(url)
    host = u.hostname or ""
    netloc = f"{host}:{u.port}" if u.port else host
    return urlunsplit((u.scheme, netloc, u.path.rstrip("/"), "", ""))


@dataclass(frozen=True)
class ServerOptions:
    """How to reach a server. ``rate`` is requests per second (None: unlimited)."""

    url: str
    model: str
    concurrency: int = 8
    batch: int = 16
    rate: float | None = None
    timeout: float = 120.0
    retries: int = 5

    def validate(self) -> None:
        u = urlsplit(self.url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise RotelabError(f"--server must be an http(s) URL such as http://127.0.0.1:8000; got '{public_url(self.url) or self.url}'")
        if not self.model:
            raise RotelabError("--server-model is required with --server (the model name the server serves)")
        if self.concurrency < 1 or self.batch < 1 or self.retries < 0 or self.timeout <= 0 or (self.rate is not None and self.rate <= 0):
            raise RotelabError("--server-concurrency, batch and timeout must be >= 1 (rate > 0, retries >= 0)")


class Client:
    """Thread-safe JSON client: retries with exponential backoff (urllib3's ``Retry`` on 429/5xx
    and connection errors), a minimum interval between requests, a timeout."""

    def __init__(self, opts: ServerOptions):
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.opts = opts
        self.base = opts.url.rstrip("/")
        if self.base.endswith("/v1"):
            self.base = self.base[: -len("/v1")]
        self.session = requests.Session()
        retry = Retry(total=opts.retries, backoff_factor=0.5, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET", "POST"), raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=max(10, opts.concurrency))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        key = os.environ.get("ROTELAB_API_KEY")
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"
        self._lock = threading.Lock()
        self._next = 0.0
        self.n_requests = 0

    def _wait_for_slot(self) -> None:
        if not self.opts.rate:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + 1.0 / self.opts.rate
        time.sleep(max(0.0, start - now))

    def request(self, method: str, path: str, body: dict | None = None) -> Any:
        """The decoded JSON answer; a failure is one line naming the server and the status."""
        import requests

        self._wait_for_slot()
        where = f"{public_url(self.opts.url)}{path}"
        try:
            r = self.session.request(method, self.base + path, json=body, timeout=self.opts.timeout)
        except requests.RequestException as e:
            raise RotelabError(f"{where}: no answer ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
        with self._lock:
            self.n_requests += 1
        if r.status_code != 200:
            raise RotelabError(f"{where}: HTTP {r.status_code} ({r.text.strip().splitlines()[0][:200] if r.text.strip() else 'no body'})")
        try:
            return r.json()
        except ValueError:
            raise RotelabError(f"{where}: the answer is not JSON") from None

    def map(self, fn, items: Sequence) -> list:
        """``fn`` over ``items``, ``concurrency`` at a time, results in input order."""
        if len(items) <= 1 or self.opts.concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(self.opts.concurrency) as pool:
            return list(pool.map(fn, items))


def prompt_logprobs(client: Client, model: str, prompts: Sequence[Sequence[int]] | Sequence[str], *, k: int = 0) -> list[dict]:
    """One ``/v1/completions`` request: per prompt, ``{"ids": prompt token ids, "lp": [None | {id: (logprob, rank)}]}``."""
    body = {"model": model, "prompt": [list(p) if not isinstance(p, str) else p for p in prompts], "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": k}
    ans = client.request("POST", "/v1/completions", body)
    choices = sorted(ans.get("choices", []), key=lambda c: c.get("index", 0))
    if len(choices) != len(prompts):
        raise RotelabError(f"{public_url(client.opts.url)}: {len(choices)} answers for {len(prompts)} prompts")
    out = []
    for c in choices:
        pl = c.get("prompt_logprobs")
        if not pl:
            raise RotelabError(f"{public_url(client.opts.url)}: the server returned no prompt log-probs; rotelab cannot audit through it (scores would be at chance)")
        ids = c.get("prompt_token_ids")
        lp = [None if e is None else {int(t): (float(v["logprob"]), int(v.get("rank") or 0)) for t, v in e.items()} for e in pl]
        out.append({"ids": list(ids) if ids is not None else None, "lp": lp})
    return out


def server_ids(answer: dict) -> list[int | None]:
    """The server's own tokenization of a text prompt: its ``prompt_token_ids`` when it returns
    them, else the token of each position's prompt log-prob (with ``k = 0`` the only key; the first
    position, which has no log-prob, unknown)."""
    if answer["ids"] is not None:
        return list(answer["ids"])
    return [None] + [next(iter(e)) if len(e) == 1 else None for e in answer["lp"][1:]]


def moments_from(entry: dict[int, tuple[float, int]], vocab_size: int, *, full: bool) -> tuple[float, float]:
    """(mu, sigma) of log p over the vocabulary from one position's returned log-probs.

    ``full``: the whole distribution: exact. Otherwise the top-k: the tail mass r = 1 - sum p_i is
    spread evenly over the V - k tokens not returned (each log(r / (V - k))): an approximation whose
    error :mod:`bench/server.py` measures against the exact value.

    >>> lp = np.log(np.array([0.5, 0.25, 0.125, 0.125]))
    >>> mu, sigma = moments_from({i: (float(v), i + 1) for i, v in enumerate(lp)}, 4, full=True)
    >>> round(mu, 6), round(sigma, 6)
    (-1.213008, 0.574727)
    """
    lp = np.array([v[0] for v in entry.values()], dtype=np.float64)
    p = np.exp(lp)
    m1, m2 = float((p * lp).sum()), float((p * lp * lp).sum())
    if not full:
        rest = max(0.0, 1.0 - float(p.sum()))
        n_rest = vocab_size - len(lp)
        if rest > 0 and n_rest > 0:
            lt = math.log(rest / n_rest)
            m1, m2 = m1 + rest * lt, m2 + rest * lt * lt
    return m1, math.sqrt(max(m2 - m1 * m1, 1e-6))


class ServerModel(LanguageModel):
    """A language model behind an inference server, tokenized locally (the conformance check has
    established that the server splits texts the same way).

    ``moments``: what :meth:`forward_signals` computes besides log p and the greedy hit (from the
    rank the server returns): ``none`` (mu, sigma NaN: enough for loss, zlib, Min-K%), ``topk`` (the
    approximation of :func:`moments_from`), ``full`` (exact; the whole distribution per position:
    about 16 MB of JSON per 127-token prompt at V = 2,048, so slow).
    """

    backend = "server"

    def __init__(self, opts: ServerOptions, tokenizer, *, report: dict, long_text: str = "truncate", max_length: int | None = None, moments: str = "none"):
        if moments not in MOMENTS:
            raise RotelabError(f"--server-moments must be one of {', '.join(MOMENTS)}; got '{moments}'")
        self.opts = opts
        self.client = Client(opts)
        self.tokenizer = tokenizer
        self.report = report
        self.name = opts.model
        self.source = public_url(opts.url)
        self.long_text = long_text
        server_len = report["max_model_len"] - 1  # a prompt must leave one position free
        if max_length is not None and max_length > server_len:
            raise RotelabError(f"--max-length {max_length} exceeds what the server takes ({server_len} prompt tokens)")
        self.max_length = max_length or server_len
        self.max_length_source = "--max-length" if max_length else "server max_model_len - 1"
        self.vocab_size = report["vocab_size"]
        self.n_embeddings = self.vocab_size
        access = {Access.LOGPROBS}
        if report.get("top_logprobs", 0) > 0:
            access.add(Access.TOPK)
        if moments == "full" and not report.get("full_distribution"):
            raise RotelabError(f"{self.source}: --server-moments full needs the whole distribution, which this server does not return (start vLLM with --max-logprobs -1), or use --server-moments topk")
        if moments == "topk" and Access.TOPK not in access:
            raise RotelabError(f"{self.source}: --server-moments topk needs top log-probs, which this server does not return")
        if moments != "none":
            access.add(Access.DISTRIBUTION)  # exact (full) or approximated (topk): the cache key says which
        self.access = frozenset(access)
        self.moments = moments

    # -- identity ---------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return self.report["fingerprint"]

    @property
    def cache_namespace(self) -> str:
        # A versioned partial format: log-probs only / top-k moments / full moments never mix.
        return f"server:{self.fingerprint}|{self.report['tokenizer_fingerprint']}|{self.long_text}|{self.max_length}|moments={self.moments}"

    def describe(self) -> dict:
        return super().describe() | {"server": self.source, "moments": self.moments, "top_logprobs": self.report.get("top_logprobs"), "full_distribution": self.report.get("full_distribution")}

    # -- LOGPROBS ---------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return [list(x) for x in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def _query(self, batch: list[list[int]], k: int) -> list[dict]:
        chunks = [batch[i : i + self.opts.batch] for i in range(0, len(batch), self.opts.batch)]
        answers = self.client.map(lambda c: prompt_logprobs(self.client, self.opts.model, c, k=k), chunks)
        return [a for ans in answers for a in ans]

    def forward_logp(self, batch: list[list[int]]) -> list[np.ndarray]:
        return [self._logp(x, a["lp"]) for x, a in zip(batch, self._query(batch, 0))]

    def forward_signals(self, batch: list[list[int]]) -> list[TokenSignals]:
        k = {"none": 0, "topk": self.report.get("top_logprobs", 0), "full": -1}[self.moments]
        out = []
        for x, a in zip(batch, self._query(batch, k)):
            T = len(x)
            logp = self._logp(x, a["lp"])
            mu = np.full(T - 1, np.nan, dtype=np.float32)
            sigma = np.full(T - 1, np.nan, dtype=np.float32)
            top1 = np.zeros(T - 1, dtype=bool)
            for t in range(1, T):
                e = a["lp"][t]
                top1[t - 1] = e[x[t]][1] == 1
                if self.moments != "none":
                    mu[t - 1], sigma[t - 1] = moments_from(e, self.vocab_size, full=self.moments == "full")
            out.append(TokenSignals(np.asarray(x, dtype=np.int64), logp, mu, sigma, top1))
        return out

    def _logp(self, x: list[int], lp: list) -> np.ndarray:
        if len(lp) != len(x):
            raise RotelabError(f"{self.source}: {len(lp)} prompt log-probs for a {len(x)}-token prompt")
        return np.array([lp[t][x[t]][0] for t in range(1, len(x))], dtype=np.float32)


# -- conformance ---------------------------------------------------------------------------------
def check_server(opts: ServerOptions, tokenizer, *, reference: LanguageModel | None = None, probes: Sequence[str] = PROBES) -> dict:
    """What the server at ``opts.url`` can do, measured on ``probes`` (see the module docstring).

    Raises a one-line :class:`RotelabError` for a server rotelab cannot audit through: unreachable,
    model not served, no prompt log-probs, another tokenizer (naming the first mismatching text),
    log-probs that change when the same request is repeated.
    """
    opts.validate()
    client = Client(opts)
    where = public_url(opts.url)
    served = client.request("GET", "/v1/models").get("data", [])
    names = [m.get("id") for m in served]
    if opts.model not in names:
        raise RotelabError(f"{where}: serves {', '.join(map(str, names)) or 'no model'}, not '{opts.model}' (--server-model)")
    entry = next(m for m in served if m.get("id") == opts.model)
    report: dict[str, Any] = {"server": where, "model": opts.model, "max_model_len": entry.get("max_model_len")}
    local = [list(x) for x in tokenizer(list(probes), add_special_tokens=True)["input_ids"]]
    if not report["max_model_len"]:
        report["max_model_len"] = max(len(x) for x in local) + 1
    # 1. prompt log-probs, and the server's own tokenization of the probe texts
    texts = prompt_logprobs(client, opts.model, list(probes), k=0)
    report["prompt_logprobs"] = True
    for text, mine, ans in zip(probes, local, texts):
        theirs = server_ids(ans)
        if theirs[1:] != mine[1:] or len(theirs) != len(mine) or (theirs[0] is not None and theirs[0] != mine[0]):
            shown = [t for t in theirs if t is not None]
            raise RotelabError(f"{where}: its tokenizer splits {text!r} differently from the local one ({len(theirs)} vs {len(mine)} tokens, e.g. {shown[:4]} vs {mine[1:5]}): --model must be the served model's tokenizer")
    report["tokenizer_matches"] = True
    # 2. the same request twice (prefix caching must not change the answer)
    again = prompt_logprobs(client, opts.model, local, k=0)
    first = prompt_logprobs(client, opts.model, local, k=0)
    diff = max(abs(a[0] - b[0]) for x, y in zip(again, first) for e1, e2 in zip(x["lp"][1:], y["lp"][1:]) for a, b in zip(e1.values(), e2.values()))
    report["repeat_max_abs_diff"] = diff
    if diff > 1e-4:
        raise RotelabError(f"{where}: the same request twice gives log-probs {diff:.2g} apart (prefix caching?); restart it with --no-enable-prefix-caching")
    # 3. how many top log-probs, and the whole distribution?
    report["top_logprobs"] = 0
    for k in (20, 5, 1):
        try:
            prompt_logprobs(client, opts.model, local[:1], k=k)
        except RotelabError:
            continue
        report["top_logprobs"] = k
        break
    try:
        full = prompt_logprobs(client, opts.model, local[:1], k=-1)[0]["lp"][1]
        report["full_distribution"] = True
        report["vocab_size"] = len(full)
    except RotelabError:
        report["full_distribution"] = False
        report["vocab_size"] = len(tokenizer)
    # 4. agreement with a local copy
    if reference is not None:
        mine = reference.forward_logp(local)
        report["max_abs_diff_vs_local"] = float(max(np.abs(m - np.array([e[x[t]][0] for t, e in enumerate(a["lp"]) if t > 0])).max() for m, x, a in zip(mine, local, again)))
    # The fingerprint: the model's name and its answers on the probes (there are no weights to hash).
    h = hashlib.sha256(opts.model.encode())
    for a in again:
        h.update(json.dumps([round(e[0], 4) for lp in a["lp"][1:] for e in lp.values()]).encode())
    report["fingerprint"] = h.hexdigest()[:24]
    from rotelab.core.models import fingerprint_tokenizer

    report["tokenizer_fingerprint"] = fingerprint_tokenizer(tokenizer)
    report["n_requests"] = client.n_requests
    return report


def connect(opts: ServerOptions, tokenizer_dir: Path | str, *, long_text: str = "truncate", max_length: int | None = None, moments: str = "none", reference: LanguageModel | None = None) -> ServerModel:
    """Check the server (:func:`check_server`), then a :class:`ServerModel` on it."""
    tok = load_tokenizer(tokenizer_dir)
    report = check_server(opts, tok, reference=reference)
    return ServerModel(opts, tok, report=report, long_text=long_text, max_length=max_length, moments=moments)


def load_tokenizer(folder: Path | str):
    """The local tokenizer (``--model`` names only a tokenizer folder with a server); no remote code."""
    from transformers import AutoTokenizer

    p = Path(folder)
    if not p.is_dir():
        raise RotelabError(f"{p}: tokenizer folder not found (with --server, --model names the served model's tokenizer folder)")
    if not (p / "tokenizer.json").exists() and not (p / "tokenizer_config.json").exists() and (p / "model" / "tokenizer.json").exists():
        p = p / "model"
    try:
        return AutoTokenizer.from_pretrained(p, trust_remote_code=False)
    except Exception as e:  # transformers raises many types; the user needs one line
        raise RotelabError(f"{p}: cannot load a tokenizer ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None
