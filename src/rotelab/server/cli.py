"""``rotelab server check URL``: is this inference server fit to audit through?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rotelab.cli_common import OutputOpts, command, emit, group

app = group("server", help="Models behind inference servers: check what a server can do before auditing through it.", order=85)


@command(app, "check")
def check(
    url: Annotated[str, typer.Argument(help="The server's base URL, e.g. http://127.0.0.1:8000.")],
    server_model: Annotated[str, typer.Option("--server-model", help="The model name the server serves.")],
    tokenizer: Annotated[Path, typer.Option("--model", "-m", help="The served model's tokenizer folder (or the model folder itself).")],
    run: OutputOpts,
    reference: Annotated[Optional[Path], typer.Option("--reference", help="A local copy of the served model: its log-probs must match the server's.")] = None,
    timeout: Annotated[float, typer.Option("--server-timeout", help="Seconds to wait for one answer.")] = 120.0,
):
    """Prompt log-probs returned? Same tokenizer? How many top log-probs, the whole distribution?
    Does the prefix cache change answers? Does it agree with a local copy? (No run folder.)"""
    from rotelab.server.api import check as api

    emit(api(url, server_model, tokenizer, reference=reference, timeout=timeout), run)
