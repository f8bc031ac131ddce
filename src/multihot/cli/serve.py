"""``multihot serve``: a run directory behind an HTTP API, with a page to try it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from multihot.cli.app import app, err, friendly
from multihot.cli.options import config_options, with_options
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

    config = ServeConfig(**{k: v for k, v in flags.items() if v is not None})

    def listening(url: str, model_id: str | None) -> None:
        model = f" (model {model_id})" if model_id else f" ({config.workers} workers)"
        # stderr, flushed: a supervisor or a test reads the address from here
        err.print(f"serving {run} at {url}{model}; the page is at {url}/, the API at {url}/docs",
                  soft_wrap=True)  # fmt: skip
        err.file.flush()

    run_server(run, config, on_listening=listening)
