"""Running the app: uvicorn on a socket bound here, one process or several, shut down gracefully.

On SIGTERM the server says at once that it is not ready (``/readyz`` answers 503) and keeps
answering for ``drain_grace_s``, so that a load balancer polling ``/readyz`` sees it leave before
its port closes; then it stops listening, finishes every request it has accepted, computes what is
queued, and exits with status 0. Ctrl+C (SIGINT) skips the grace; a second one forces the exit.
With several workers each worker stops listening at once: uvicorn's supervisor, not this module,
handles their signals.

Connections are guarded by :class:`multihot.serve.protocol.GuardedHttp` (read deadline,
connection count).

Example:
    >>> serve("runs/emotions", ServeConfig(port=8000))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from multihot.core.errors import ConfigError, MultihotError
from multihot.core.memory import bound_primitive_cache
from multihot.core.threads import set_threads
from multihot.inference.predictor import Predictor
from multihot.serve.config import ServeConfig

logger = logging.getLogger(__name__)

SPEC_ENV = "MULTIHOT_SERVE_SPEC"
"""How ``serve`` tells each worker process (``workers > 1``) what to load: JSON of the run
directory and the :class:`ServeConfig`."""
GRACEFUL_SHUTDOWN_S = 30
"""How long a shutdown waits for requests in flight before it drops them."""


def import_server():
    """``(fastapi, uvicorn)``, or a clear error saying how to install them (and httptools, the
    parser :mod:`multihot.serve.protocol` guards)."""
    try:
        # optional: fastapi, httptools, uvicorn (the serve extra), checked to say how to install
        import fastapi
        import httptools  # noqa: F401
        import uvicorn
    except ImportError:
        raise MultihotError(
            "the server needs fastapi, uvicorn and httptools; install the serve extra: "
            "pip install 'multihot[serve]'"
        ) from None
    return fastapi, uvicorn


def load_predictor(run: str | Path, config: ServeConfig) -> Predictor:
    """The run's predictor on the configured backend and precision, in a process whose oneDNN
    primitive cache is bounded (:func:`multihot.core.memory.bound_primitive_cache`)."""
    bound_primitive_cache()
    if config.backend == "onnx":
        return Predictor.load(run, backend="onnx", onnx_path=config.onnx_model)
    return Predictor.load(run, backend="torch", precision=config.precision)


def bind(config: ServeConfig) -> socket.socket:
    """A listening TCP socket on ``config.host`` and ``config.port`` (0: a free port)."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {config.host}:{config.port}: {err.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    run: str | Path,
    config: ServeConfig,
    on_listening: Callable[[str, str | None], None] | None = None,
) -> None:
    """Serve a run directory until SIGTERM or Ctrl+C.

    Args:
        run: the run directory.
        config: the server's settings.
        on_listening: called with the URL and the model's id (None with several workers, each
            of which loads the model itself) once the socket listens, before the model answers
            (``/readyz`` says when it does).
    """
    import_server()  # a missing serve extra: a clear error before anything else
    if config.workers > 1:
        return _serve_workers(run, config, on_listening)
    # optional: fastapi and uvicorn stay off this module's import, so import_server can say they
    # are missing; imported here, not taken from import_server, so that uvicorn.Server is typed
    import uvicorn

    from multihot.serve.app import create_app

    predictor = load_predictor(run, config)
    app = create_app(predictor, config)
    state = app.state.multihot
    sock = bind(config)

    class Server(uvicorn.Server):
        stop_listening_at: float | None = None

        def handle_exit(self, sig, frame):
            # uvicorn's own handler, but for re-raising the signal once drained: a server that
            # stopped as asked exits 0, as supervisors expect. A second Ctrl+C forces the exit.
            first = not state.draining
            state.draining = True  # /readyz says so at once
            if first and sig == signal.SIGTERM and config.drain_grace_s > 0:
                self.stop_listening_at = time.monotonic() + config.drain_grace_s
                return
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True  # uvicorn stops listening on its next tick

        async def on_tick(self, counter: int) -> bool:
            if self.stop_listening_at is not None and time.monotonic() >= self.stop_listening_at:
                self.should_exit = True
            return await super().on_tick(counter)

    uv_config = uvicorn_config(uvicorn, app, config)
    if on_listening:
        on_listening(url_of(sock), state.model_id)
    try:
        Server(uv_config).run(sockets=[sock])
    finally:
        sock.close()


def uvicorn_config(uvicorn, app, config: ServeConfig, **kwargs):
    """uvicorn's settings for ``app``: the guarded protocol (which reads ``config`` from the
    ``multihot`` attribute, as worker processes do too), graceful shutdown, no access log."""
    uv_config = uvicorn.Config(
        app,
        http="multihot.serve.protocol:GuardedHttp",
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        access_log=False,
        **kwargs,
    )
    uv_config.multihot = config
    return uv_config


def _serve_workers(run, config: ServeConfig, on_listening) -> None:
    # optional: uvicorn (the serve extra)
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    load_predictor(run, config)  # fail here, once, on a broken run, not in every worker
    sock = bind(config)
    spec = {"run": str(Path(run).resolve()), "config": config.to_dict(secrets=True)}
    os.environ[SPEC_ENV] = json.dumps(spec)  # the API key too: only this process's children see it
    uv_config = uvicorn_config(
        uvicorn, "multihot.serve.server:worker_app", config, factory=True, workers=config.workers
    )
    if on_listening:
        on_listening(url_of(sock), None)
    try:
        Multiprocess(uv_config, sockets=[sock]).run()
    finally:
        sock.close()


def worker_app():
    """The app of one worker process (``workers > 1``), from :data:`SPEC_ENV`; each worker gets
    an equal share of the cores."""
    spec = json.loads(os.environ[SPEC_ENV])
    raw = spec["config"]
    if raw.get("onnx_model"):
        raw["onnx_model"] = Path(raw["onnx_model"])
    config = ServeConfig(**raw)
    set_threads(max(1, (os.cpu_count() or 1) // config.workers))  # imports no torch
    from multihot.serve.app import create_app  # optional: fastapi, as in serve()

    return create_app(load_predictor(spec["run"], config), config)
