"""The model layer: :class:`LanguageModel`, what every text capability talks to.

Backends
--------
HFLanguageModel    any causal LM folder transformers loads (GPT-2, Llama, GPT-NeoX, Qwen2, OPT, ...):
                   config + safetensors + tokenizer. Offers every access level.
LogprobsOnlyModel  the shape of a remote inference server (prompt log-probs only); wraps another
                   backend and refuses everything else.

A method declares the access it needs (:class:`~rotelab.core.access.Access`) and is refused up
front, in one line, when the backend lacks it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import torch

from rotelab.core.access import Access, require
from rotelab.core.signals import LONG_TEXT_POLICIES, TokenSignals, chunk_rows, signals_in_chunks
from rotelab.errors import RotelabError

if TYPE_CHECKING:
    from rotelab.core.server import ServerOptions


# Config fields of models whose logits are not just the head's output (soft-capping, scaling).
_LOGIT_POSTPROCESS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


class LanguageModel:
    """Narrow interface: tokenize, per-token signals, greedy generation, hidden states, weights.

    Attributes
    ----------
    name : str            shown in reports.
    access : frozenset    the access levels this backend offers.
    max_length : int      context length in tokens.
    long_text : str       policy for texts longer than the context: truncate | window | error.
    cache_namespace : str what the signal cache keys on, besides the text.
    """

    name: str
    access: frozenset[Access]
    max_length: int
    long_text: str
    backend = "abstract"

    def require(self, needed: Access, *, method: str, remaining: str | None = None) -> None:
        require(self.access, needed, method=method, backend=self.backend, remaining=remaining)

    def describe(self) -> dict:
        """What a run's manifest records about the model: name, backend, context and its source."""
        return {"name": self.name, "backend": self.backend, "max_length": self.max_length,
                "max_length_source": getattr(self, "max_length_source", None), "long_text": self.long_text,
                "source": str(getattr(self, "source", None) or ""), "dtype": str(getattr(self, "dtype", ""))}

    @property
    def bos_ids(self) -> list[int]:
        """The ids the tokenizer puts before every text ([] for GPT-2-style tokenizers, [bos] for Llama).

        Found as the common prefix of two texts that share no first character.
        """
        if not hasattr(self, "_bos_ids"):
            a, b = self.tokenize(["a", "Z"])
            n = 0
            while n < min(len(a), len(b)) and a[n] == b[n]:
                n += 1
            self._bos_ids = list(a[:n])
        return self._bos_ids

    # -- LOGPROBS ---------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def detokenize(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def forward_signals(self, batch: list[list[int]]) -> list[TokenSignals]:
        """One batched forward pass over token-id lists (each <= max_length)."""
        raise NotImplementedError

    def forward_logp(self, batch: list[list[int]]) -> list[np.ndarray]:
        """Per text, the (T-1,) log p(x_t | x_<t) alone: what perturbation-based scores need."""
        return [s.logp for s in self.forward_signals(batch)]

    def forward_many(self, kind: str, batches: list[list[list[int]]]) -> Iterator[tuple[int, list]]:
        """(batch index, outputs) of ``forward_signals`` (kind ``signals``) or ``forward_logp``
        (``logp``) over many batches, in any order: a distributed backend
        (:class:`rotelab.core.distributed.RayModel`) runs them in parallel; this one in order."""
        fn = self.forward_signals if kind == "signals" else self.forward_logp
        for j, b in enumerate(batches):
            yield j, fn(b)

    @property
    def cache_namespace(self) -> str:
        raise NotImplementedError


class HFLanguageModel(LanguageModel):
    """A transformers causal LM and its tokenizer.

    Built by :func:`load_model` from a folder, or directly from in-memory objects (tests).
    """

    access = frozenset(Access)
    backend = "hugging-face"

    def __init__(self, model, tokenizer, *, name: str = "model", long_text: str = "truncate", fingerprint: str | None = None, source: Path | None = None, max_length: int | None = None):
        if long_text not in LONG_TEXT_POLICIES:
            raise RotelabError(f"--long-text must be one of {', '.join(LONG_TEXT_POLICIES)}; got '{long_text}'")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.source = source  # the folder it was loaded from, if any
        self.long_text = long_text
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        self.max_length, self.max_length_source = context_length(model.config, tokenizer, max_length)
        self.n_embeddings = int(model.get_input_embeddings().weight.shape[0])
        self.pad_id = _pad_id(tokenizer, model.config)
        self._fingerprint = fingerprint or fingerprint_module(model)
        self._tok_fingerprint = fingerprint_tokenizer(tokenizer)
        self._separable: bool | None = None

    # -- identity ---------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def cache_namespace(self) -> str:
        return f"{self._fingerprint}|{self._tok_fingerprint}|{self.long_text}|{self.max_length}|{self.dtype}"

    # -- LOGPROBS ---------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> list[list[int]]:
        # The tokenizer's own default for special tokens (Llama adds BOS, GPT-2 adds nothing).
        out = [list(x) for x in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        for i, x in enumerate(out):
            if x and max(x) >= self.n_embeddings:  # len(tokenizer) may legitimately differ from the rows (Pythia, OPT)
                raise RotelabError(
                    f"text {i} ('{texts[i][:40]}'): token id {max(x)} is beyond the model's {self.n_embeddings} embedding rows; "
                    "the tokenizer does not belong to this model"
                )
        return out

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def _right_pad(self, batch: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        T = max(len(x) for x in batch)
        ids = torch.full((len(batch), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), T), dtype=torch.long)
        for r, x in enumerate(batch):
            ids[r, : len(x)] = torch.tensor(x)
            mask[r, : len(x)] = 1
        return ids.to(self.device), mask.to(self.device)

    def forward_signals(self, batch: list[list[int]]) -> list[TokenSignals]:
        flat, n_pred = self._flat_signals(batch, moments=True)
        cols = {k: np.split(v, np.cumsum(n_pred)[:-1]) for k, v in flat.items()}
        return [
            TokenSignals(np.asarray(x, dtype=np.int64), cols["logp"][r], cols["mu"][r], cols["sigma"][r], cols["top1"][r])
            for r, x in enumerate(batch)
        ]

    def forward_logp(self, batch: list[list[int]]) -> list[np.ndarray]:
        flat, n_pred = self._flat_signals(batch, moments=False)
        return np.split(flat["logp"], np.cumsum(n_pred)[:-1])

    @torch.inference_mode()
    def _flat_signals(self, batch: list[list[int]], *, moments: bool) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Signals of every prediction of the batch, texts one after another, and each text's count."""
        # A text's last token predicts nothing scored, and under causal attention no earlier
        # position sees it: it is left out of the input. Position t then predicts token t+1.
        ids, mask = self._right_pad([x[:-1] for x in batch])  # (B, T-1)
        n_pred = np.array([len(x) - 1 for x in batch])
        scored = mask.bool()  # (B, T-1), row-major like the targets
        targets = torch.from_numpy(np.concatenate([np.asarray(x[1:], dtype=np.int64) for x in batch])).to(ids.device)  # (N,)
        # Right padding: positions 0..len-1 are the default position ids, so none are passed.
        if self._head_separable():
            rows = self.model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state[scored]  # (N, d)
            head = self.model.get_output_embeddings()
        else:
            rows, head = self.model(input_ids=ids, attention_mask=mask).logits[scored], None  # (N, V)
        V = head.out_features if head is not None else rows.shape[-1]
        flat = signals_in_chunks(rows, targets, head, chunk=chunk_rows(V, ids.device), moments=moments)
        return {k: v.cpu().numpy() for k, v in flat.items()}, n_pred

    def _head_separable(self) -> bool:
        """Whether logits = output_embeddings(base_model(x).last_hidden_state), so the head can be
        applied in chunks (:func:`signals_in_chunks`).

        False for models that rescale or soft-cap their logits (Gemma 2, Cohere, Granite) or whose
        head is not a linear layer; checked once, also numerically on a 2 x 8 probe.
        """
        if self._separable is None:
            cfg = self.model.config
            head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
            base = getattr(self.model, "base_model", None)
            ok = isinstance(head, torch.nn.Linear) and base is not None and base is not self.model
            ok = ok and not any(getattr(cfg, k, None) not in (None, 1, 1.0) for k in _LOGIT_POSTPROCESS)
            if ok:
                probe = (torch.arange(16, device=self.device) % head.out_features).view(2, 8)
                with torch.inference_mode():
                    full = self.model(input_ids=probe).logits.float()
                    out = base(input_ids=probe)
                    ok = hasattr(out, "last_hidden_state")  # a PEFT model's base_model returns logits
                    if ok:
                        split = head(out.last_hidden_state).float()
                        ok = bool(torch.allclose(full, split, rtol=1e-3, atol=1e-3 * full.abs().max().item()))
            self._separable = ok
        return self._separable

    # -- GENERATION -------------------------------------------------------------------------
    def greedy(self, prompts: list[list[int]], max_new_tokens: int, *, batch_size: int = 32, progress: bool = False) -> list[list[int]]:
        """Greedy continuations of exactly ``max_new_tokens`` tokens (no stop at EOS).

        See :func:`rotelab.core.generate.greedy_generate`.
        """
        from rotelab.core.generate import greedy_generate

        return greedy_generate(self, prompts, max_new_tokens, batch_size=batch_size, progress=progress)

    # -- HIDDEN -----------------------------------------------------------------------------
    @torch.inference_mode()
    def hidden_states(self, batch: list[list[int]]) -> list[np.ndarray]:
        """Residual stream after each block: per text an array (n_layers + 1, T, d), embeddings first."""
        ids, mask = self._right_pad(batch)
        hs = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        stack = torch.stack(hs, dim=1).float().cpu().numpy()  # (B, L+1, T, d)
        return [stack[r, :, : len(x)] for r, x in enumerate(batch)]


class LogprobsOnlyModel(LanguageModel):
    """What a fully open inference server offers (vLLM with ``--max-logprobs -1``): per-token
    log-prob signals of given texts, with the whole distribution, and nothing else.

    Wraps another backend (tests). Generation, hidden states and weights are refused with a
    one-line message. :class:`rotelab.core.server.ServerModel` is the real remote backend.
    """

    access = frozenset({Access.LOGPROBS, Access.TOPK, Access.DISTRIBUTION})
    backend = "log-probs-only"

    def __init__(self, inner: LanguageModel):
        self._inner = inner
        self.name = f"{inner.name} (log-probs only)"
        self.max_length = inner.max_length
        self.long_text = inner.long_text

    @property
    def cache_namespace(self) -> str:
        return self._inner.cache_namespace

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self._inner.tokenize(texts)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._inner.detokenize(ids)

    def forward_signals(self, batch: list[list[int]]) -> list[TokenSignals]:
        return self._inner.forward_signals(batch)

    def forward_logp(self, batch: list[list[int]]) -> list[np.ndarray]:
        return self._inner.forward_logp(batch)

    def greedy(self, *a, **k):
        self.require(Access.GENERATION, method="generation")

    def hidden_states(self, *a, **k):
        self.require(Access.HIDDEN, method="hidden states")

    @property
    def model(self):
        self.require(Access.WEIGHTS, method="weight access")


# -- helpers ---------------------------------------------------------------------------------
def context_length(config, tokenizer=None, max_length: int | None = None) -> tuple[int, str]:
    """The model's context in tokens and where it came from.

    ``max_length`` (``--max-length``) when given, capped at the config's own context; else the
    config (n_positions, max_position_embeddings, ...); else the tokenizer's ``model_max_length``.
    Recurrent models (Mamba-2) have no context in their config: they take the option or the tokenizer's.
    """
    own = next(((k, v) for k in ("n_positions", "max_position_embeddings", "n_ctx", "seq_length") if isinstance(v := getattr(config, k, None), int) and v > 0), None)
    if max_length is not None:
        if own is not None and max_length > own[1]:
            raise RotelabError(f"--max-length {max_length} exceeds the model's context of {own[1]} tokens (config {own[0]})")
        return max_length, "--max-length"
    if own is not None:
        return own[1], f"config {own[0]}"
    v = getattr(tokenizer, "model_max_length", None)
    if isinstance(v, int) and 0 < v < 1_000_000:
        return v, "tokenizer model_max_length"
    raise RotelabError("the model's config gives no context length (a recurrent model?) and neither does its tokenizer: pass --max-length N")


def _pad_id(tokenizer, config) -> int:
    for v in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None), getattr(config, "eos_token_id", None)):
        if isinstance(v, int):
            return v
        if isinstance(v, list) and v:
            return int(v[0])
    return 0  # padded positions are masked and never scored


def fingerprint_module(model: torch.nn.Module) -> str:
    """Cheap identity of in-memory weights: config + shapes + a few slices of every 8th tensor."""
    h = hashlib.sha256(model.config.to_json_string().encode())
    for i, (name, p) in enumerate(model.state_dict().items()):
        h.update(f"{name}{tuple(p.shape)}".encode())
        if i % 8 == 0:
            flat = p.detach().reshape(-1)
            h.update(flat[:64].float().cpu().numpy().tobytes())
            h.update(flat[-64:].float().cpu().numpy().tobytes())
    return h.hexdigest()[:24]


def fingerprint_folder(path: Path) -> str:
    """Cheap identity of a model folder: config, weight file sizes and mtimes, and 64 KiB from
    the head and tail of each weight file (not a hash of all weights)."""
    h = hashlib.sha256()
    cfg = path / "config.json"
    h.update(cfg.read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{int(st.st_mtime)}".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 16))
            fh.seek(max(0, st.st_size - (1 << 16)))
            h.update(fh.read(1 << 16))
    return h.hexdigest()[:24]


def fingerprint_tokenizer(tokenizer) -> str:
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "to_str"):
        h.update(backend.to_str().encode())
    else:
        h.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    return h.hexdigest()[:16]


def resolve_model_dir(path: Path | str) -> Path:
    """A model folder, or a testbed / unlearning folder holding one in ``model/``."""
    p = Path(path)
    if not p.exists():
        raise RotelabError(f"{p}: model folder not found")
    if not p.is_dir():
        raise RotelabError(f"{p}: expected a model folder (config.json + weights + tokenizer), got a file")
    if not (p / "config.json").exists() and (p / "model" / "config.json").exists():
        p = p / "model"
    if not (p / "config.json").exists():
        raise RotelabError(f"{p}: no config.json (not a Hugging Face model folder, nor a testbed folder with model/)")
    return p


def _check_weights(p: Path, allow_pickle: bool) -> bool:
    """True when safetensors weights exist; refuses pickle-only weights unless allowed."""
    if list(p.glob("*.safetensors")):
        return True
    pickles = sorted(x.name for x in p.glob("*.bin")) + sorted(x.name for x in p.glob("*.pt"))
    if pickles and not allow_pickle:
        raise RotelabError(
            f"{p}: only pickle weights ({pickles[0]}); pickle can run code on load: convert to safetensors or pass --allow-pickle"
        )
    if not pickles:
        raise RotelabError(f"{p}: no weights (*.safetensors) in the folder")
    return False


def pick_device(device: str | None) -> torch.device:
    """``device`` (checked: it must exist on this machine), or cuda when available, else cpu."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise RotelabError(f"--device must be cpu, cuda, cuda:N or mps; got '{device}'") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RotelabError(f"--device {device}: this machine has no CUDA device (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise RotelabError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RotelabError(f"--device {device}: MPS is not available on this machine")
    return dev


_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class LoadOptions:
    """How to open a model folder: the model options every model command takes.

    device : cpu, cuda, cuda:N (default: cuda when available).
    dtype : float32 | bfloat16 | float16.
    long_text : texts longer than the context: truncate | window | error.
    trust_remote_code : run the folder's own Python code (off by default).
    allow_pickle : load pickle (``*.bin``) weights, which can run code (off: safetensors only).
    max_length : context in tokens, for models whose config gives none (recurrent models such as
        Mamba-2), or to score with a shorter context; default: the config's, else the tokenizer's.
    server : a model behind an inference server (:class:`rotelab.core.server.ServerOptions`); the
        path then names only its tokenizer folder.
    server_moments : none | topk | full: what a server's signals carry besides log p
        (:class:`rotelab.core.server.ServerModel`).
    workers : > 0: scoring fanned out over this many Ray workers, each with its own copy
        (:class:`rotelab.core.distributed.RayModel`); ``ray_address`` a cluster's (default: local).
    """

    device: str | None = None
    dtype: str = "float32"
    long_text: str = "truncate"
    trust_remote_code: bool = False
    allow_pickle: bool = False
    max_length: int | None = None
    server: "ServerOptions | None" = None
    server_moments: str = "none"
    workers: int = 0
    ray_address: str | None = None

    def validate(self) -> None:
        """One line for a bad value, before anything is loaded or written."""
        if self.dtype not in _DTYPES:
            raise RotelabError(f"--dtype must be one of {', '.join(_DTYPES)}; got '{self.dtype}'")
        if self.long_text not in LONG_TEXT_POLICIES:
            raise RotelabError(f"--long-text must be one of {', '.join(LONG_TEXT_POLICIES)}; got '{self.long_text}'")
        if self.max_length is not None and self.max_length < 2:
            raise RotelabError(f"--max-length must be >= 2; got {self.max_length}")
        if self.workers < 0:
            raise RotelabError(f"--workers must be >= 0; got {self.workers}")
        if self.server is not None:
            from rotelab.core.server import MOMENTS

            self.server.validate()
            if self.server_moments not in MOMENTS:
                raise RotelabError(f"--server-moments must be one of {', '.join(MOMENTS)}; got '{self.server_moments}'")
            return
        pick_device(self.device)

    def load(self, path: Path | str) -> "LanguageModel":
        """The model at ``path``, or (with ``server``) the served model tokenized by ``path``'s
        tokenizer; with ``workers``, fanned out over Ray workers."""
        if self.workers:
            from dataclasses import replace

            from rotelab.core.distributed import RayModel

            one = replace(self, workers=0, ray_address=None)
            return RayModel(one.load(path), path, one, workers=self.workers, address=self.ray_address)
        if self.server is not None:
            from rotelab.core.server import connect

            self.validate()
            return connect(self.server, path, long_text=self.long_text, max_length=self.max_length, moments=self.server_moments)
        return load_model(path, device=self.device, dtype=self.dtype, long_text=self.long_text, trust_remote_code=self.trust_remote_code, allow_pickle=self.allow_pickle, max_length=self.max_length)


def load_model(
    path: Path | str,
    *,
    device: str | None = None,
    dtype: str = "float32",
    long_text: str = "truncate",
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    max_length: int | None = None,
) -> HFLanguageModel:
    """Load a causal LM folder (or a testbed folder's ``model/``) as a :class:`HFLanguageModel`.

    ``trust_remote_code`` stays off unless asked; weights load from safetensors, and pickle-only
    folders are refused unless ``allow_pickle``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    LoadOptions(device, dtype, long_text, trust_remote_code, allow_pickle, max_length).validate()
    p = resolve_model_dir(path)
    safetensors = _check_weights(p, allow_pickle)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tok = AutoTokenizer.from_pretrained(p, trust_remote_code=trust_remote_code)
    except Exception as e:  # transformers raises many types; the user needs one line
        raise RotelabError(f"{p}: cannot load the tokenizer ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    try:
        model = AutoModelForCausalLM.from_pretrained(
            p, dtype=_DTYPES[dtype], trust_remote_code=trust_remote_code, use_safetensors=safetensors
        )
    except Exception as e:
        raise RotelabError(f"{p}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    model.to(pick_device(device))
    lm = HFLanguageModel(model, tok, name=p.parent.name if p.name == "model" else p.name, long_text=long_text, fingerprint=fingerprint_folder(p), source=p, max_length=max_length)
    try:
        lm.tokenize([_PROBE_TEXT])
    except RotelabError as e:
        raise RotelabError(f"{p}: {str(e).split(': ', 1)[1]}") from None
    return lm


# Letters, digits, punctuation, accents and CJK: a tokenizer that belongs to the model maps it
# into the embedding rows.
_PROBE_TEXT = "The quick brown fox, 1994: naïve café — 東京."


def vocab_size(lm: LanguageModel) -> int:
    """How many token ids the model scores (its input embedding rows), through a log-probs-only
    wrapper too: the size of a per-token table such as DC-PDD's frequencies."""
    inner = lm._inner if isinstance(lm, LogprobsOnlyModel) else lm
    n = getattr(inner, "n_embeddings", None)
    if not isinstance(n, int):
        raise RotelabError(f"the {lm.backend} backend does not report its vocabulary size")
    return n


def load_masked_lm(path: Path | str, *, device: str | None = "cpu", trust_remote_code: bool = False, allow_pickle: bool = False):
    """A masked LM folder (BERT, RoBERTa, DistilBERT, ...) as ``(model, tokenizer, fingerprint)``,
    under the rules of :func:`load_model`: safetensors unless ``allow_pickle``, no remote code
    unless ``trust_remote_code``, one line naming the folder for anything it cannot load."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    p = resolve_model_dir(path)
    safetensors = _check_weights(p, allow_pickle)
    hf_logging.set_verbosity_error()
    try:
        tok = AutoTokenizer.from_pretrained(p, trust_remote_code=trust_remote_code)
        model = AutoModelForMaskedLM.from_pretrained(p, trust_remote_code=trust_remote_code, use_safetensors=safetensors)
    except Exception as e:  # transformers raises many types; the user needs one line
        raise RotelabError(f"{p}: cannot load a masked language model ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    return model.to(pick_device(device)).eval(), tok, fingerprint_folder(p)
