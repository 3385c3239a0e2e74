"""``rotelab server check``: the conformance check of :func:`rotelab.core.server.check_server`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rotelab.core.models import LanguageModel, LoadOptions


def check(url: str, model: str, tokenizer: Path | str, *, reference: "LanguageModel | Path | str | None" = None, concurrency: int = 8, timeout: float = 120.0) -> dict[str, Any]:
    """What the server at ``url`` serving ``model`` can do, measured on probe texts.

    ``tokenizer``: the local tokenizer folder (the served model's); ``reference``: a local copy of
    the model, whose log-probs the server's must match (within 1e-4 is what rotelab expects).
    Raises a one-line error for a server rotelab cannot audit through.
    """
    from rotelab.core.api import as_model
    from rotelab.core.server import ServerOptions, check_server, load_tokenizer

    opts = ServerOptions(url, model, concurrency=concurrency, timeout=timeout)
    opts.validate()
    tok = load_tokenizer(tokenizer)
    ref = as_model(reference, LoadOptions(device="cpu")) if reference is not None else None
    return check_server(opts, tok, reference=ref)
