"""``multihot serve``: a run directory behind an HTTP API, with a page to try it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from multihot.cli.app import app, err, friendly
from multihot.cli.options import config_options, with_options
from multihot.serve.access import API_KEY_ENV, access_warnings
from multihot.serve.config import ServeConfig

SERVE_OPTIONS = config_options(ServeConfig, "Server")


@app.command()
@friendly
@with_options(SERVE_OPTIONS)
def serve(
    run: Annotated[Path, typer.Argument(help="Run directory.")],
    *,
    flags: dict[str, Any],
) -> None:
    """Serve a run over HTTP: POST /v1/predict, GET /v1/model, /metrics, a page at /.

    Concurrent requests are batched into one forward pass; SIGTERM or Ctrl+C finishes what was
    accepted, then exits.
    """
    from multihot.serve.server import serve as run_server

    if flags.get("api_key") is None:  # an empty variable counts as unset, an empty --api-key not
        flags["api_key"] = os.environ.get(API_KEY_ENV) or None
    config = ServeConfig(**{k: v for k, v in flags.items() if v is not None})
    for warning in access_warnings(config.host, config.api_key, config.allowed_hosts):
        err.print(f"warning: {warning}", style="yellow", markup=False, soft_wrap=True)

    def listening(url: str, model_id: str | None) -> None:
        model = f" (model {model_id})" if model_id else f" ({config.workers} workers)"
        # stderr, flushed: a supervisor or a test reads the address from here
        err.print(
            f"serving {run} at {url}{model}; the page is at {url}/, the API at {url}/docs",
            soft_wrap=True,
        )
        err.file.flush()

    run_server(run, config, on_listening=listening)
