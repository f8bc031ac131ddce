"""Who may use ``multihot serve``: an API key, the Host header (against DNS rebinding), JSON-only
bodies, a model id that fits a header, and nothing served that the README does not name.

The HTTP checks run against real server subprocesses on a free loopback port; the policy's
corner cases run in-process."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse

import pytest

from helpers import TOY_TEXTS, Server, copy_run, invoke, serving

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

KEY = "s3cret-Key_0123456789"
GUARDED = ("/v1/model", "/v1/labels", "/metrics", "/docs", "/openapi.json")


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def predict(server: Server, headers: dict[str, str], body: bytes | None = None):
    body = body if body is not None else json.dumps({"texts": TOY_TEXTS[:2]}).encode()
    return server.request("POST", "/v1/predict", body, headers)


@pytest.fixture(scope="module")
def keyed(toy_run):
    """A server whose key comes from MULTIHOT_API_KEY, as the README advises."""
    _, run = toy_run
    with serving(run, "--precision", "fp32", env={"MULTIHOT_API_KEY": KEY}) as server:
        yield server


@pytest.fixture(scope="module")
def open_server(toy_run):
    """No key; one extra host name allowed."""
    _, run = toy_run
    server = Server(run, "--precision", "fp32", "--allowed-hosts", "api.example")
    yield server
    assert server.stop() == 0


def host_request(server: Server, host: str, path: str = "/v1/labels"):
    """GET ``path`` with the Host header set to ``host``."""
    return server.request("GET", path, headers={"Host": host})


# ------------------------------------------------------------------------------------ the key
def test_without_the_key_only_health_and_the_page_answer(keyed):
    for path in ("/healthz", "/readyz", "/"):
        assert keyed.get(path)[0] == 200, path
    for path in GUARDED:
        status, headers, body = keyed.get(path)
        assert status == 401, path
        assert headers["www-authenticate"].startswith("Bearer")
        assert body["error"]["code"] == "unauthorized" and body["model_id"].startswith("toy@")
        assert "Authorization: Bearer" in body["error"]["message"]
    status, headers, body = predict(keyed, {"Content-Type": "application/json"})
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", f"Basic {KEY}", KEY, "Bearer", "Bearer ", "Bearer é"],
)
def test_a_wrong_key_is_refused(keyed, authorization):
    status, headers, body = predict(
        keyed, {"Content-Type": "application/json", "Authorization": authorization}
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert KEY not in json.dumps(body) and KEY not in json.dumps(headers)


def test_with_the_key_everything_answers_and_the_key_is_never_shown(keyed):
    for path in GUARDED:
        status, headers, body = keyed.request("GET", path, headers=bearer())
        assert status == 200, path
        assert KEY not in (body if isinstance(body, str) else json.dumps(body))
        assert KEY not in json.dumps(headers)
    status, _, body = keyed.request("GET", "/v1/model", headers={"authorization": f"bearer {KEY}"})
    assert status == 200 and "api_key" not in json.dumps(body)
    status, _, body = predict(keyed, {"Content-Type": "application/json", **bearer()})
    assert status == 200 and len(body["predictions"]) == 2
    assert not any(KEY in line for line in keyed.lines), keyed.lines


def test_a_large_refused_body_still_gets_its_401(keyed):
    """Python's client sends the whole body before it reads: the 401 must not be a reset."""
    status, _, body = predict(
        keyed,
        {"Content-Type": "application/json"},
        json.dumps({"texts": ["word " * 200] * 100}).encode(),
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"


def test_the_python_client_sends_the_key(keyed, monkeypatch):
    from multihot import Client
    from multihot.serve.client import ServerError

    monkeypatch.delenv("MULTIHOT_API_KEY", raising=False)
    with pytest.raises(ServerError, match="API key") as caught:
        Client(keyed.url).predict(TOY_TEXTS[:1])
    assert caught.value.status == 401 and "MULTIHOT_API_KEY" in str(caught.value)
    with pytest.raises(ServerError, match="API key") as caught:
        Client(keyed.url, api_key="not-the-key-42").model()
    assert KEY not in str(caught.value) and "not-the-key-42" not in str(caught.value)
    assert len(Client(keyed.url, api_key=KEY).predict(TOY_TEXTS[:3])) == 3
    monkeypatch.setenv("MULTIHOT_API_KEY", KEY)
    client = Client(keyed.url)
    assert client.label_names and client.model_id.startswith("toy@")


def test_workers_keep_the_key(toy_run):
    """The key crosses to each worker process though the config's dict hides it."""
    _, run = toy_run
    server = Server(run, "--precision", "fp32", "--workers", 2, "--api-key", KEY)
    try:
        assert server.get("/v1/labels")[0] == 401
        assert server.request("GET", "/v1/labels", headers=bearer())[0] == 200
        assert not any(KEY in line for line in server.lines)
    finally:
        assert server.stop() == 0


def test_the_config_never_shows_the_key():
    from multihot.serve.config import ServeConfig

    config = ServeConfig(api_key=KEY)
    assert KEY not in repr(config) and KEY not in json.dumps(config.to_dict())
    assert config.to_dict(secrets=True)["api_key"] == KEY
    assert ServeConfig().to_dict()["api_key"] is None


@pytest.mark.parametrize("key", ["", "two words", "tab\there", "clé-secrète", "line\nbreak"])
def test_a_key_that_cannot_travel_in_a_header_is_refused(key):
    from multihot.core.errors import ConfigError
    from multihot.serve.config import ServeConfig

    with pytest.raises(ConfigError, match="api_key") as caught:
        ServeConfig(api_key=key)
    assert key not in str(caught.value) or not key


def test_the_masked_key_cannot_be_fed_back():
    """A dict from to_dict() turned back into a config must not make "<hidden>" the key."""
    from multihot.core.errors import ConfigError
    from multihot.serve.config import ServeConfig

    with pytest.raises(ConfigError, match="api_key"):
        ServeConfig(**ServeConfig(api_key=KEY).to_dict())


# ----------------------------------------------------------------------- the CLI, not started
@pytest.fixture()
def started(monkeypatch):
    """``multihot serve`` up to the point it would listen: the config it would serve."""
    import multihot.serve.server as server

    seen = {}
    monkeypatch.setattr(
        server, "serve", lambda run, config, on_listening=None: seen.setdefault("config", config)
    )
    monkeypatch.delenv("MULTIHOT_API_KEY", raising=False)
    return seen


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_a_server_open_to_others_without_a_key_warns(tiny_run, started, host):
    result = invoke("serve", tiny_run, "--host", host)
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "no API key" in result.output
    assert "--api-key" in result.output and "MULTIHOT_API_KEY" in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_server_does_not_warn(tiny_run, started, host):
    result = invoke("serve", tiny_run, "--host", host)
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    assert started["config"].host == host


def test_the_key_comes_from_the_option_or_the_environment(tiny_run, started, monkeypatch):
    result = invoke("serve", tiny_run, "--host", "0.0.0.0", "--api-key", KEY)
    assert result.exit_code == 0 and "no API key" not in result.output, result.output
    assert started["config"].api_key == KEY and KEY not in result.output
    monkeypatch.setenv("MULTIHOT_API_KEY", "from-env")
    assert invoke("serve", tiny_run).exit_code == 0 and started["config"].api_key == KEY
    started.clear()
    assert invoke("serve", tiny_run).exit_code == 0
    assert started["config"].api_key == "from-env"
    started.clear()
    result = invoke("serve", tiny_run, "--api-key", "has space")
    assert result.exit_code == 2 and "api_key" in result.output and "has space" not in result.output


# ------------------------------------------------------------------------------- the Host header
def test_a_foreign_host_is_refused(open_server):
    """DNS rebinding: a page at evil.example whose name now points at 127.0.0.1."""
    port = urllib.parse.urlsplit(open_server.url).port
    for host in (
        "evil.example",
        f"evil.example:{port}",
        "api.example.evil.example",
        "",
        "127.0.0.1.evil.example",
        "localhost:notaport",
        "[::1",
    ):
        status, headers, body = host_request(open_server, host)
        assert status == 400, host
        assert body["error"]["code"] == "unknown_host"
        assert "--allowed-hosts" in body["error"]["message"]
        assert headers["x-model-id"] == body["model_id"]
    assert host_request(open_server, "evil.example", "/healthz")[0] == 400


def test_the_servers_own_names_are_answered(open_server):
    port = urllib.parse.urlsplit(open_server.url).port
    for host in (
        f"127.0.0.1:{port}",
        "127.0.0.1",
        f"localhost:{port}",
        "LocalHost",
        "localhost.",
        f"[::1]:{port}",
        "api.example",
        f"API.example:{port}",
    ):
        assert host_request(open_server, host)[0] == 200, host


def test_a_request_without_a_host_header_is_answered(open_server):
    """HTTP/1.0 needs no Host; browsers always send one, so rebinding cannot leave it out."""
    address = urllib.parse.urlsplit(open_server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_two_host_headers_are_refused(open_server):
    address = urllib.parse.urlsplit(open_server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.putrequest("GET", "/v1/labels", skip_host=True)
    connection.putheader("Host", "127.0.0.1")
    connection.putheader("Host", "evil.example")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 400, response.read()
    connection.close()


@pytest.mark.parametrize(
    ("bound", "allowed", "host", "answered"),
    [
        ("127.0.0.1", None, "localhost", True),
        ("127.0.0.1", None, "[::1]:8000", True),
        ("127.0.0.1", None, "10.0.0.5", False),  # loopback answers loopback names only
        ("127.0.0.1", None, "evil.example", False),
        ("::1", None, "[::1]", True),
        ("localhost", None, "127.0.0.1:1234", True),
        ("192.168.1.20", None, "192.168.1.20:8000", True),
        ("192.168.1.20", None, "localhost", False),
        ("192.168.1.20", None, "models.lan", False),
        ("192.168.1.20", ["models.lan"], "models.lan:8000", True),
        ("0.0.0.0", None, "10.0.0.5:8000", True),  # an address is no DNS name to rebind
        ("0.0.0.0", None, "[fe80::1]:8000", True),
        ("0.0.0.0", None, "localhost:8000", True),
        ("0.0.0.0", None, "models.lan", False),
        ("0.0.0.0", ["models.lan", "api.example:443"], "api.example", True),
        ("::", ["*"], "anything.example", True),
        ("127.0.0.1", ["*"], "anything.example", True),
    ],
)
def test_the_host_policy(bound, allowed, host, answered):
    from multihot.serve.access import AccessPolicy

    policy = AccessPolicy(host=bound, allowed_hosts=allowed)
    refusal = policy.check("GET", "/v1/labels", [(b"host", host.encode())])
    assert (refusal is None) == answered, refusal
    if refusal is not None:
        assert refusal.status == 400 and refusal.code == "unknown_host"


@pytest.mark.parametrize("entry", ["", "two words", "a/b", "[::1", "http://x.example"])
def test_a_malformed_allowed_host_is_refused(entry):
    from multihot.core.errors import ConfigError
    from multihot.serve.config import ServeConfig

    with pytest.raises(ConfigError, match="allowed_hosts"):
        ServeConfig(allowed_hosts=[entry])


# ----------------------------------------------------------------------------- the content type
@pytest.mark.parametrize(
    "kind",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
        "application/json; charset=latin-1",
        "application/json-patch+json",
    ],
)
def test_json_endpoints_refuse_other_content_types(open_server, kind):
    """What a browser may send cross-site without asking first (a CORS preflight) is refused."""
    status, _, body = predict(open_server, {} if kind is None else {"Content-Type": kind})
    assert status == 415, kind
    assert body["error"]["code"] == "unsupported_media_type"
    assert "application/json" in body["error"]["message"]


@pytest.mark.parametrize(
    "kind",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=UTF-8",
        'application/json ; charset="utf-8"',
    ],
)
def test_json_is_accepted(open_server, kind):
    status, _, body = predict(open_server, {"Content-Type": kind})
    assert status == 200 and len(body["predictions"]) == 2


def test_get_endpoints_need_no_content_type(open_server):
    assert host_request(open_server, "127.0.0.1", "/v1/model")[0] == 200


# ------------------------------------------------------------------------ the model id, /redoc
def test_redoc_is_not_served(open_server):
    status, _, body = open_server.get("/redoc")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert "/redoc" not in json.dumps(open_server.get("/openapi.json")[2])


def test_a_run_named_with_a_newline_is_served(toy_run, tmp_path):
    """Its model id goes in a header: control characters and non-ASCII are percent-encoded, the
    same in the header and in JSON bodies."""
    from multihot import Client

    clf, run = toy_run
    odd = copy_run(run, tmp_path / "emo\r\nX-Injected: 1 é")
    server = Server(odd, "--precision", "fp32")
    try:
        status, headers, body = server.post({"texts": TOY_TEXTS[:2]})
        assert status == 200 and "x-injected" not in headers
        model_id = headers["x-model-id"]
        assert model_id.startswith("emo%0D%0AX-Injected:%201%20%C3%A9@")
        assert body["model_id"] == model_id == server.get("/v1/model")[2]["model_id"]
        assert server.get("/healthz")[2]["model_id"] == model_id
        client = Client(server.url)
        assert client.predict(TOY_TEXTS[:2]) == clf.predict(TOY_TEXTS[:2], precision="fp32")
        assert client.model_id == model_id
        assert urllib.parse.unquote(model_id).startswith(odd.name)
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("emotions@3f9a0c2b71de", "emotions@3f9a0c2b71de"),
        ("a b", "a%20b"),
        ("100%", "100%25"),
        ("情绪", "%E6%83%85%E7%BB%AA"),
        ("tab\t", "tab%09"),
        ("del\x7f", "del%7F"),
    ],
)
def test_the_model_id_for_http(name, expected):
    from multihot.serve.access import http_model_id

    assert http_model_id(name) == expected


def test_a_wildcard_address_without_allowed_hosts_says_names_are_refused(tiny_run, started):
    result = invoke("serve", tiny_run, "--host", "0.0.0.0", "--api-key", KEY)
    assert "--allowed-hosts" in result.output
    started.clear()
    result = invoke(
        "serve",
        tiny_run,
        "--host",
        "0.0.0.0",
        "--api-key",
        KEY,
        "--allowed-hosts",
        "models.lan,api.example",
    )
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    assert started["config"].allowed_hosts == ["models.lan", "api.example"]
