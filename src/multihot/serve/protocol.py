"""uvicorn's HTTP protocol (httptools) with two guards against clients that hold connections.

- **Read deadline**: a connection must finish a request's headers within ``read_timeout_s`` of
  opening, or of its previous answer; one that does not (it sends nothing, half a request line,
  or keeps dribbling a body the app already answered) is closed. The body itself is the app's to
  time (:func:`multihot.serve.body.read_body`, 408). uvicorn alone never times these out: its
  keep-alive timer starts only after an answer, and any byte received cancels it.
- **Connection count**: the number of open connections goes to the app in the request's scope
  (``scope["extensions"][OPEN_CONNECTIONS]``), which refuses a request past ``max_connections`` with
  a JSON 503 (uvicorn's own ``limit_concurrency`` answers in plain text).

The settings ride on uvicorn's ``Config`` as the attribute ``multihot`` (a
:class:`multihot.serve.config.ServeConfig`), so worker processes get them too.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from multihot.serve.app import OPEN_CONNECTIONS
from multihot.serve.config import ServeConfig


class GuardedHttp(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with a read deadline and the connection count in the scope."""

    def __init__(self, config, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        settings: ServeConfig = getattr(config, "multihot", None) or ServeConfig()
        self.read_timeout_s = settings.read_timeout_s
        self._deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        # A request the app holds is the app's to answer (it times the body itself).
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        self.scope.setdefault("extensions", {})[OPEN_CONNECTIONS] = len(self.connections)
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()
