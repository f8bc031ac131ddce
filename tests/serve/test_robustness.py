"""``multihot serve`` against clients that misbehave: bodies that stall or stop, too many
connections, bodies past the limit sent by clients that close, text that is not Unicode, and a
shutdown watched by a load balancer. Real servers in subprocesses, spoken to over raw sockets."""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from helpers import Server, subprocess_env

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

READ_TIMEOUT_S = 1.5
MAX_CONNECTIONS = 6
LIMITS = ("--max-texts", 8, "--max-chars", 300, "--max-body-bytes", 6000)


@pytest.fixture(scope="module")
def server(toy_run):
    _, run = toy_run
    server = Server(
        run,
        "--precision",
        "fp32",
        "--read-timeout-s",
        READ_TIMEOUT_S,
        "--max-connections",
        MAX_CONNECTIONS,
        *LIMITS,
    )
    yield server
    assert server.stop() == 0


def address(server: Server) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(server.url)
    return parts.hostname, parts.port


def head(length: int) -> bytes:
    return (
        b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
    )


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection; fails after ``timeout``."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


# ------------------------------------------------------------------------ text that is not text
@pytest.mark.parametrize(
    "body, fragment",
    [
        (b'{"texts": ["fine", "\\ud800"]}', "texts[1]"),  # a lone surrogate, JSON-escaped
        (b'{"texts": ["\\udc00 and more"]}', "texts[0]"),
        (b'{"texts": ["fine", ' + b"1" * 5000 + b"]}", "texts[1]"),  # past Python's int digits
        (b'{"texts": [' + b"9" * 5000 + b".5e3]}", "texts[0]"),
    ],
)
def test_text_that_is_not_unicode_or_a_huge_number_gets_422_naming_the_text(server, body, fragment):
    status, headers, answer = server.post(body)
    assert (status, answer["error"]["code"]) == (422, "invalid_request"), answer
    assert fragment in answer["error"]["message"] and answer["model_id"] == headers["x-model-id"]


def test_the_onnx_backend_refuses_them_too(onnx_run):
    pytest.importorskip("onnxruntime")
    _, run, _ = onnx_run
    server = Server(run, "--backend", "onnx")
    try:
        for body in (b'{"texts": ["\\ud800"]}', b'{"texts": [' + b"1" * 5000 + b"]}"):
            status, _, answer = server.post(body)
            assert (status, answer["error"]["code"]) == (422, "invalid_request"), answer
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"texts": ["a"], "texts": ["b", "c"]}',
        b'{"texts": ["a"], "return_probs": true, "return_probs": false}',
    ],
)
def test_a_duplicate_key_is_refused_not_overwritten(server, body):
    status, _, answer = server.post(body)
    assert (status, answer["error"]["code"]) == (422, "invalid_request"), answer
    assert "more than once" in answer["error"]["message"]


# -------------------------------------------------------------------- stalled and idle clients
def test_a_body_that_stops_gets_408_and_its_connection_closed(server):
    host, port = address(server)
    stalled = []
    for _ in range(5):
        sock = socket.create_connection((host, port))
        sock.sendall(head(100) + b'{"texts": ')  # 10 of the 100 bytes promised
        stalled.append(sock)
    started = time.monotonic()
    try:
        answers = [read_until_closed(sock, timeout=READ_TIMEOUT_S + 10) for sock in stalled]
    finally:
        for sock in stalled:
            sock.close()
    assert time.monotonic() - started < READ_TIMEOUT_S + 5
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408 "), answer
        assert b'"code":"body_timeout"' in answer and b"connection: close" in answer.lower()
    assert server.get("/readyz")[0] == 200


@pytest.mark.parametrize("sent", [b"", b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nCont"])
def test_a_connection_that_sends_no_whole_request_is_closed(server, sent):
    sock = socket.create_connection(address(server))
    with sock:
        sock.sendall(sent)
        started = time.monotonic()
        read_until_closed(sock, timeout=READ_TIMEOUT_S + 10)
    assert time.monotonic() - started < READ_TIMEOUT_S + 5


def test_a_body_dribbled_after_an_early_answer_is_cut_off(server):
    """The server answers 404 without reading the body; the client keeps dribbling it."""
    sock = socket.create_connection(address(server))
    with sock:
        sock.sendall(head(10_000).replace(b"/v1/predict", b"/nowhere") + b"x")
        started = time.monotonic()
        sock.settimeout(1)
        received = b""
        with pytest.raises((BrokenPipeError, ConnectionResetError)):  # noqa: PT012
            while time.monotonic() - started < READ_TIMEOUT_S + 5:
                sock.sendall(b"x")
                time.sleep(0.2)
                with contextlib.suppress(TimeoutError):
                    received += sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 404 ")


def test_past_max_connections_a_request_gets_503_json(server):
    host, port = address(server)
    idle = [socket.create_connection((host, port)) for _ in range(MAX_CONNECTIONS - 1)]
    try:
        assert server.post({"texts": ["the last free connection"]})[0] == 200
        idle.append(socket.create_connection((host, port)))
        status, headers, answer = server.post({"texts": ["one too many"]})
        assert (status, answer["error"]["code"]) == (503, "too_many_connections"), answer
        assert answer["error"]["limit"] == MAX_CONNECTIONS and headers["retry-after"] == "1"
        assert headers["x-model-id"] == answer["model_id"]
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while server.post({"texts": ["room again"]})[0] != 200:
        assert time.monotonic() < deadline, "the closed connections still count"
        time.sleep(0.1)


# ------------------------------------------------------------------------ bodies past the limit
def test_a_client_that_closes_reads_the_413_of_a_body_past_the_limit(server):
    """Python's http.client with ``Connection: close`` (as urllib, and so multihot.Client,
    sends): the server reads the rest of a body up to a bound before answering, so the client
    is not reset while it still sends."""
    host, port = address(server)
    for size in (6_001, 3_000_000, 8_000_000):
        connection = http.client.HTTPConnection(host, port, timeout=30)
        try:
            connection.request(
                "POST",
                "/v1/predict",
                body=b"x" * size,
                headers={"Content-Type": "application/json", "Connection": "close"},
            )
            response = connection.getresponse()
            answer = json.loads(response.read())
        finally:
            connection.close()
        assert (response.status, answer["error"]["code"]) == (413, "body_too_large")
        assert answer["error"]["limit"] == 6000 and str(size) in answer["error"]["message"]


def test_a_body_far_past_the_limit_is_answered_at_once_and_closed(server):
    sock = socket.create_connection(address(server))
    with sock:
        sock.sendall(head(10**12))  # no body sent: the server must not wait for it
        answer = read_until_closed(sock, timeout=10)
    assert answer.startswith(b"HTTP/1.1 413 ") and b"connection: close" in answer.lower()


def test_the_client_checks_the_limits_before_sending(server):
    from multihot import Client
    from multihot.serve.client import ServerError

    def refused() -> float:
        text = server.get("/metrics")[2]
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith('multihot_requests_total{endpoint="/v1/predict",status="413"')
        )

    client = Client(server.url)
    before = refused()
    cases = [
        (["a"] * 9, "too_many_texts", "max_texts"),
        (["a" * 301], "text_too_long", "max_chars"),
        (["é" * 300] * 8, "body_too_large", "max_body_bytes"),
    ]
    for texts, code, limit in cases:
        with pytest.raises(ServerError, match=limit) as caught:
            client.predict(texts)
        assert (caught.value.status, caught.value.code) == (413, code)
    assert refused() == before, "the client sent what the server was bound to refuse"
    assert client.predict(["é" * 300]) and client.predict(["a"] * 8)


# ------------------------------------------------------------------------------- a client leaves
def test_a_client_leaving_mid_body_logs_one_line_not_a_traceback(server):
    sock = socket.create_connection(address(server))
    sock.sendall(head(100) + b'{"texts": ')
    time.sleep(0.3)
    sock.close()
    time.sleep(1.0)
    logged = "".join(server.lines)
    assert "Traceback" not in logged and "ERROR" not in logged, logged
    assert server.get("/readyz")[0] == 200


# --------------------------------------------------------------------------------- the schema
def test_the_schema_says_texts_are_not_empty(server):
    schema = server.get("/openapi.json")[2]
    body = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    texts = body["schema"]["properties"]["texts"]
    assert texts["minItems"] == 1 and texts["items"]["minLength"] == 1
    assert texts["maxItems"] == 8 and texts["items"]["maxLength"] == 300
    assert texts["items"]["pattern"]  # not whitespace, controls and marks only


# ------------------------------------------------------------------------------------ shutdown
def test_readyz_answers_503_while_the_server_drains(toy_run):
    _, run = toy_run
    server = Server(run, "--precision", "fp32", "--drain-grace-s", 3)
    server.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    for _ in range(2):
        time.sleep(0.5)  # past the event loop's next tick, when uvicorn would stop listening
        status, headers, answer = server.get("/readyz")
        assert (status, answer["error"]["message"]) == (503, "shutting down"), answer
        assert headers["retry-after"] == "1"
        assert server.post({"texts": ["still answered"]})[0] == 200  # a late request is served
    assert server.process.wait(30) == 0
    assert time.monotonic() - started >= 2.5
    assert server.get("/readyz")[0] == 0  # then nothing listens


# -------------------------------------------------------------------------------- schemathesis
@pytest.mark.slow
def test_schemathesis_finds_nothing_against_the_live_schema(toy_run):
    """benchmarks/schemathesis_serve.py on the toy run: every check, 30 cases per operation."""
    pytest.importorskip("schemathesis")
    _, run = toy_run
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "schemathesis_serve.py"
    done = subprocess.run(
        [sys.executable, str(script), "--run", str(run), "--max-examples", "30"],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )
    summary = [line for line in done.stdout.splitlines() if line.startswith("schemathesis ")]
    assert done.returncode == 0 and summary, done.stdout[-3000:] + done.stderr[-2000:]
    assert " 0 with failures" in summary[0] and " 0 errored" in summary[0]
