"""Who may use the server: the ``Host`` a request names, its API key, and the type of its body.

Three checks run before any endpoint, in this order, each refusing with the API's JSON error:

- **Host** (400 ``unknown_host``), against DNS rebinding: a page at ``evil.example`` whose name the
  attacker points at 127.0.0.1 reaches a loopback server, but its requests say
  ``Host: evil.example``. Answered are the bound address; ``localhost``, ``127.0.0.1`` and ``[::1]``
  when it is a loopback one; any IP address when it is a wildcard (0.0.0.0, ::), since an address
  is no name to rebind; and the ``--allowed-hosts`` names (``*``: any). The port is not compared:
  a rebinding page must already use the server's own port, and ``--port 0`` or a proxy changes it.
  A request with no Host at all (HTTP/1.0) is answered: browsers always send one.
- **API key** (401 ``unauthorized``, with ``WWW-Authenticate: Bearer``): with ``--api-key``, every
  path but the health checks and the page at ``/`` (which asks for the key itself) needs
  ``Authorization: Bearer KEY``, compared in constant time.
- **Content type** (415 ``unsupported_media_type``): a JSON endpoint takes ``application/json``
  only, optionally with ``charset=utf-8``; what a browser may post cross-site without a preflight
  (``text/plain``, forms) never reaches it.

Example:
    >>> policy = AccessPolicy("127.0.0.1", api_key="k3y", json_paths=("/v1/predict",))
    >>> policy.check("GET", "/v1/model", [(b"host", b"evil.example")]).code
    'unknown_host'
    >>> policy.check("GET", "/v1/model", [(b"authorization", b"Bearer k3y")]) is None
    True
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import NamedTuple

API_KEY_ENV = "MULTIHOT_API_KEY"
"""The environment variable ``multihot serve`` and :class:`~multihot.serve.client.Client` read the
key from when none is given (safer than ``--api-key``: other users see a command line)."""
PUBLIC_PATHS = frozenset({"/", "/healthz", "/readyz"})
"""Paths answered without the key: the probes, and the page (its own requests carry the key)."""
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARDS = frozenset({"", "0.0.0.0", "::"})
CHALLENGE = (("WWW-Authenticate", "Bearer"),)
"""The header of every 401: the scheme the key is sent in."""
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9a-f:.%]+)\]|(?P<name>[a-z0-9_.-]+))(?::(?P<port>\d{1,5}))?$")
_MODEL_ID_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")


class Refusal(NamedTuple):
    """An access check's answer: the status, the error's code and message, extra headers."""

    status: int
    code: str
    message: str
    headers: tuple[tuple[str, str], ...] = ()


def host_name(value: str) -> str | None:
    """The name in a ``Host`` header or an ``--allowed-hosts`` entry, lower-case, without port,
    brackets or a trailing dot; None when it is not one.

    Example:
        >>> host_name("LocalHost.:8000"), host_name("[::1]:80"), host_name("a b")
        ('localhost', '::1', None)
    """
    value = value.strip().lower()
    match = _HOST.match(value)
    if match is None:  # a bare IPv6 address is no Host header, but is an address to bind
        return str(ipaddress.ip_address(value)) if _is_ip(value) else None
    if match["v6"] is not None:
        return str(ipaddress.ip_address(match["v6"])) if _is_ip(match["v6"]) else None
    name = match["name"].rstrip(".")
    return (str(ipaddress.ip_address(name)) if _is_ip(name) else name) or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to bind) answers this machine only."""
    name = host_name(host) or ""
    return name == "localhost" or (_is_ip(name) and ipaddress.ip_address(name).is_loopback)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def http_model_id(model_id: str) -> str:
    """``model_id`` fit for an HTTP header: every character but printable ASCII (and ``%``)
    percent-encoded as UTF-8, so a run directory named with a newline or in another script still
    gives a valid ``X-Model-Id``, and the same id in JSON bodies; ``urllib.parse.unquote`` reverses
    it.

    Example:
        >>> http_model_id("my run\\n@3f9a0c2b71de")
        'my%20run%0A@3f9a0c2b71de'
    """
    return urllib.parse.quote(model_id, safe=_MODEL_ID_SAFE)


def access_warnings(host: str, api_key: str | None, allowed_hosts: list[str] | None) -> list[str]:
    """What ``multihot serve`` should warn about before it listens on ``host``."""
    warnings = []
    if not api_key and not is_loopback(host):
        warnings.append(
            f"{host} is reachable from other machines and no API key is set: "
            f"anyone who reaches the port can use the model (set {API_KEY_ENV} or "
            "--api-key)"
        )
    if host in WILDCARDS and not allowed_hosts:
        warnings.append(
            "requests that name this server by a host name rather than an address "
            "are refused; list its names with --allowed-hosts"
        )
    return warnings


class AccessPolicy:
    """The three checks, set up once for a server bound to ``host``.

    Args:
        host: the address the server listens on.
        allowed_hosts: further names to answer to (``*``: any).
        api_key: the key every guarded path needs; None: no key.
        json_paths: paths whose POST bodies must be JSON.
    """

    def __init__(
        self,
        host: str,
        allowed_hosts: Iterable[str] | None = None,
        api_key: str | None = None,
        json_paths: Iterable[str] = (),
    ):
        bound = host_name(host) or host
        self.any_address = bound in WILDCARDS
        names = {bound} | (LOOPBACK_NAMES if self.any_address or is_loopback(bound) else set())
        allowed = [host_name(h) if h != "*" else "*" for h in allowed_hosts or ()]
        self.any_host = "*" in allowed
        self.hosts = frozenset(names | {h for h in allowed if h})
        self._key = None if api_key is None else api_key.encode("ascii")
        self.json_paths = frozenset(json_paths)

    def check(self, method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Refusal | None:
        """The refusal a request earns (``headers`` as ASGI gives them), or None to answer it."""
        by_name: dict[bytes, list[bytes]] = {}
        for name, value in headers:
            by_name.setdefault(name.lower(), []).append(value)
        return (
            self._check_host(by_name.get(b"host", []))
            or self._check_key(path, by_name.get(b"authorization", []))
            or self._check_type(method, path, by_name.get(b"content-type", []))
        )

    def _check_host(self, hosts: list[bytes]) -> Refusal | None:
        if not hosts or self.any_host:
            return None
        value = hosts[0].decode("latin-1")
        name = host_name(value) if len(hosts) == 1 else None
        if name is not None and (name in self.hosts or (self.any_address and _is_ip(name))):
            return None
        shown = json.dumps(value[:100]) if len(hosts) == 1 else "given twice"
        return Refusal(
            400,
            "unknown_host",
            f"Host {shown} is not a name of this server; "
            "start it with --allowed-hosts NAME to answer to another name",
        )

    def _check_key(self, path: str, given: list[bytes]) -> Refusal | None:
        if self._key is None or path in PUBLIC_PATHS:
            return None
        scheme, _, token = (given[0] if len(given) == 1 else b"").strip().partition(b" ")
        # compare_digest on bytes: constant time, and no TypeError on a non-ASCII header
        if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._key):
            return None
        why = "a wrong API key" if given else "no API key"
        return Refusal(
            401,
            "unauthorized",
            f"{why}: this server needs the header Authorization: Bearer <key>",
            CHALLENGE,
        )

    def _check_type(self, method: str, path: str, kinds: list[bytes]) -> Refusal | None:
        if method != "POST" or path not in self.json_paths:
            return None
        if len(kinds) == 1 and _is_json(kinds[0].decode("latin-1")):
            return None
        shown = json.dumps(kinds[0].decode("latin-1")[:100]) if kinds else "none"
        return Refusal(
            415,
            "unsupported_media_type",
            f"Content-Type {shown}; expected application/json (charset utf-8, if any)",
        )


def _is_json(content_type: str) -> bool:
    kind, *params = (part.strip().lower() for part in content_type.split(";"))
    for param in params:
        name, _, value = (p.strip() for p in param.partition("="))
        if name == "charset" and value.strip('"') not in ("utf-8", "utf8"):
            return False
    return kind == "application/json"


class AccessControl:
    """ASGI middleware that runs an :class:`AccessPolicy` before the app, answering a refusal
    itself in the API's error shape (``{"error": {"code", "message"}, "model_id"}``)."""

    def __init__(self, app, policy: AccessPolicy, model_id: str):
        self.app, self.policy, self.model_id = app, policy, model_id

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.policy.check(scope["method"], scope["path"], scope["headers"])
        if refusal is None:
            return await self.app(scope, receive, send)
        body = json.dumps(
            {"error": {"code": refusal.code, "message": refusal.message}, "model_id": self.model_id}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((k.lower().encode(), v.encode()) for k, v in refusal.headers),
        ]
        await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
