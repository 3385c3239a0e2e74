"""A small local HTTP stand-in for an OpenAI-compatible completions server, backed by a local
model: the protocol logic of :mod:`rotelab.core.server` is tested without vLLM (the real server is
tested in the serial stage, ``tests/server``). Modes reproduce what real servers get wrong: no
prompt log-probs (llama.cpp), log-probs that change on a repeated request (a stale prefix cache).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch


class StandIn:
    """``with StandIn(lm, name="m") as url: ...`` serves ``lm`` at ``url``."""

    def __init__(self, lm, *, name: str = "standin", mode: str = "ok", max_logprobs: int = 20, full: bool = True):
        self.lm, self.name, self.mode, self.max_logprobs, self.full = lm, name, mode, max_logprobs, full
        self.calls = 0

    def answer(self, body: dict) -> tuple[int, dict]:
        k = int(body.get("prompt_logprobs", 0) or 0)
        if (k > self.max_logprobs) or (k == -1 and not self.full):
            return 400, {"error": {"message": f"prompt_logprobs {k} exceeds the maximum"}}
        prompts = body["prompt"] if isinstance(body["prompt"], list) and body["prompt"] and not isinstance(body["prompt"][0], int) else [body["prompt"]]
        choices = []
        for i, p in enumerate(prompts):
            ids = self.lm.tokenize([p])[0] if isinstance(p, str) else list(p)
            with torch.inference_mode():
                logits = self.lm.model(input_ids=torch.tensor([ids])).logits[0].float()
            lp = torch.log_softmax(logits, -1)  # (T, V); row t predicts token t + 1
            self.calls += 1
            if self.mode == "stale" and self.calls % 2 == 0:
                lp = lp + 0.01 * torch.randn_like(lp)
            entries = [None]
            for t in range(1, len(ids)):
                row = lp[t - 1]
                rank = int((row > row[ids[t]]).sum()) + 1
                e = {str(ids[t]): {"logprob": float(row[ids[t]]), "rank": rank, "decoded_token": ""}}
                top = range(len(row)) if k == -1 else row.topk(k).indices.tolist() if k > 0 else []
                for v in top:
                    e.setdefault(str(v), {"logprob": float(row[v]), "rank": int((row > row[v]).sum()) + 1, "decoded_token": ""})
                entries.append(e)
            c = {"index": i, "text": "", "prompt_token_ids": None}
            if self.mode != "no_logprobs":
                c["prompt_logprobs"] = entries
            choices.append(c)
        return 200, {"choices": choices}

    def __enter__(self) -> str:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def _send(self, code: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    self._send(200, {"data": [{"id": outer.name, "max_model_len": outer.lm.max_length + 1}]})
                else:
                    self._send(404, {})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(*outer.answer(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
