"""What the tests share besides fixtures: the toy data, the CLI through Typer's runner, run copies.

Every test file imports from here (``from helpers import ...``; pyproject's ``pythonpath`` puts
``tests/`` on ``sys.path``), never from another test file. Fixtures live in ``conftest.py``.
Heavy libraries are imported inside the functions that need them, so importing this is cheap.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SAMPLE = ROOT / "examples" / "goemotions"
FIXTURES = TESTS / "fixtures"

# A handful of texts that a tiny encoder can learn exactly (the overfit test).
TOY_TEXTS = [
    "i love this so much",
    "this is terrible and sad",
    "what a great day",
    "i hate waiting in line",
    "happy happy joy joy",
    "so angry right now",
    "lovely weather today",
    "awful service and rude staff",
]
TOY_LABELS = [
    ["joy", "love"],
    ["sadness"],
    ["joy"],
    ["anger"],
    ["joy"],
    ["anger"],
    ["joy"],
    ["anger", "sadness"],
]

# Small and fast: 2 layers of hidden 128, tiny vocabulary; fp32 so results are exact.
TINY = {
    "encoder": "scratch-tiny",
    "vocab_size": 120,
    "max_length": 32,
    "precision": "fp32",
    "seed": 0,
}


# ------------------------------------------------------------------------------------------ files
def write_jsonl(path: Path, texts, labels) -> Path:
    """A JSON Lines file of ``{"text": ..., "labels": [...]}`` records."""
    with open(path, "w", encoding="utf-8") as fh:
        for text, names in zip(texts, labels, strict=True):
            fh.write(json.dumps({"text": text, "labels": names}) + "\n")
    return path


# Long documents: filler words, and per label a trigger phrase at a random place in the text.
FILLER = [
    a + b
    for a in ("ba", "ko", "mi", "tu", "re", "sa", "lo", "ne", "pi", "du")
    for b in ("ran", "tek", "mol", "vis", "dap", "gor", "lin", "sum")
]
TRIGGERS = {"blue": "azure whale", "green": "emerald turtle", "red": "crimson falcon"}


LONG = {
    "encoder": "scratch-tiny",
    "vocab_size": 200,
    "max_length": 64,
    "stride": 8,
    "max_chunks": 48,
    "pooling": "max",
    "precision": "fp32",
    "seed": 0,
    "epochs": 6,
    "batch_size": 4,
    "lr": 1e-3,
    "patience": 0,
    "compare_baseline": False,
}
"""Settings that learn :func:`long_documents` in windows within a minute: 64-token windows
(54 new tokens each, so 2,000 tokens are 37 windows), max pooling over tokens and windows."""


def long_documents(n: int, seed: int, words: tuple[int, int] = (600, 2000), rate: float = 0.4):
    """``(texts, labels)``: ``n`` texts of ``words`` filler words (one token each for a
    tokenizer trained on them); each label of :data:`TRIGGERS` is present with probability
    ``rate``, its trigger phrase put at a uniformly random word position, so mostly far past the
    first window of a short ``max_length``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        text = rng.choice(FILLER, size=int(rng.integers(words[0], words[1] + 1))).tolist()
        present = [name for name in TRIGGERS if rng.random() < rate]
        for name in present:
            at = int(rng.integers(0, len(text)))
            text[at:at] = TRIGGERS[name].split()
        texts.append(" ".join(text))
        labels.append(present)
    return texts, labels


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON Lines file (a run's history.jsonl, predictions written with -o)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def copy_run(run: Path, destination: Path) -> Path:
    """A copy of a run directory to change or write into; a shared fixture's run stays as it is."""
    return Path(shutil.copytree(run, destination))


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes, to show nothing changed."""
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


class Payload:
    """Unpickling this calls ``marker.touch()``: harmless, but proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def write_payload(path: Path, marker: Path) -> Path:
    """A torch.save checkpoint that looks like a state dict but runs code when unpickled."""
    import torch

    torch.save({"embeddings.word_embeddings.weight": Payload(marker)}, path)
    return path


# ------------------------------------------------------------------------------- command line
def invoke(*args, input=None):
    """``multihot ARGS...`` in this process, through Typer's CliRunner (stdout and stderr apart)."""
    from typer.testing import CliRunner

    from multihot.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def assert_clean_error(result, *fragments):
    """Exit 2, one line naming what was wrong, and no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    # Log lines (INFO ...) may come first; the error is one line, and the last.
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("error:"), result.stderr
    assert sum(line.startswith("error:") for line in result.stderr.splitlines()) == 1
    for fragment in fragments:
        assert fragment in message, message


def tiny_flags():
    """The command-line spelling of :data:`TINY`."""
    return [
        "--encoder",
        TINY["encoder"],
        "--vocab-size",
        TINY["vocab_size"],
        "--max-length",
        TINY["max_length"],
        "--precision",
        TINY["precision"],
        "--seed",
        TINY["seed"],
    ]


def train_cli(data: Path, output: Path, *flags):
    """``multihot train DATA --val DATA -o OUTPUT`` on the tiny encoder; ``flags`` come last, so
    they may override the tiny settings."""
    return invoke("train", data, "--val", data, "-o", output, *tiny_flags(), *flags)


def subprocess_env() -> dict[str, str]:
    """The environment for a ``multihot`` started in a fresh interpreter: this checkout's package
    first, and ``tests/`` so that code run there can import this module."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)])}


# ------------------------------------------------------------------------------------- server
class Server:
    """``multihot serve RUN --port 0 FLAGS...`` in a subprocess on a free loopback port, read from
    the address it prints; waits until ``/readyz`` answers."""

    def __init__(self, run: Path, *flags, timeout: float = 120.0, env: dict | None = None):

        command = [
            sys.executable,
            "-m",
            "multihot",
            "serve",
            str(run),
            "--port",
            "0",
            *map(str, flags),
        ]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**subprocess_env(), **(env or {})},
        )
        self.lines: list[str] = []
        deadline = time.monotonic() + timeout
        self.url = ""
        while not self.url:
            line = self.process.stderr.readline()
            if not line:
                raise AssertionError(f"the server exited ({self.process.wait()}): {self.lines}")
            self.lines.append(line)
            if " at http://" in line:
                self.url = line.split(" at ", 1)[1].split()[0].rstrip(";")
            if time.monotonic() > deadline:
                raise AssertionError(f"no address within {timeout} s: {self.lines}")

        # Keep reading stderr, so a chatty server never blocks on a full pipe.
        threading.Thread(target=lambda: self.lines.extend(self.process.stderr), daemon=True).start()
        while self.get("/readyz")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"not ready: {self.lines}")
            time.sleep(0.1)

    def request(self, method: str, path: str, body: bytes | None = None, headers=None):
        """``(status, headers, parsed JSON or text)``; never raises on an HTTP error status."""

        address = urllib.parse.urlsplit(self.url)
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        kind = response.getheader("content-type", "")
        content = json.loads(raw) if kind.startswith("application/json") else raw.decode()
        return response.status, dict(response.getheaders()), content

    def get(self, path: str):
        try:
            return self.request("GET", path)
        except OSError:
            return 0, {}, None

    def post(self, payload, path: str = "/v1/predict"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def metric(self, name: str) -> float:
        """The sum over label sets of a metric in ``/metrics`` (``name`` without the prefix)."""
        text = self.get("/metrics")[2]
        total = 0.0
        for line in text.splitlines():
            if line.startswith(f"multihot_{name}{{") or line.startswith(f"multihot_{name} "):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code."""

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@contextlib.contextmanager
def serving(run: Path, *flags, env: dict | None = None):
    """A :class:`Server` for the ``with`` block, which must exit 0 when stopped after it."""
    server = Server(run, *flags, env=env)
    try:
        yield server
    finally:
        assert server.stop() == 0


# ------------------------------------------------------------------------------------ browser
BROWSER_REQUIRED = "MULTIHOT_REQUIRE_BROWSER"
"""Set (as ``.ci/run`` does) to make a missing browser a failure rather than a skip."""
SCREENSHOTS = "MULTIHOT_SCREENSHOTS"
"""A directory for the browser tests' screenshots (``.ci/run`` sets ``screenshots/``)."""


def screenshot_path(tmp_path: Path, name: str) -> Path:
    """Where a browser test saves its screenshot: :data:`SCREENSHOTS` when set, else tmp_path."""
    directory = Path(os.environ.get(SCREENSHOTS) or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name


def chromium_or_skip() -> str:
    """The headless browser's executable: Debian's ``chromium`` (or Chrome). Skips the test when
    there is none, unless :data:`BROWSER_REQUIRED` is set, as in CI, where that fails it."""
    import pytest

    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    message = "no chromium: apt-get install chromium (CI installs it)"
    if os.environ.get(BROWSER_REQUIRED):
        pytest.fail(message)
    pytest.skip(message)


class Browser:
    """Headless Chromium driven over the DevTools protocol (one page, one websocket).

    Args:
        executable: from :func:`chromium_or_skip`.
        profile: an empty directory for the browser's profile.
        offline: no network at all (a page that must be self-contained); loopback included,
            so open ``file://`` URLs then.
    """

    def __init__(self, executable: str, profile: Path, offline: bool = False):

        import websocket

        args = [
            executable,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "about:blank",
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium did not start: {self.process.stderr.read()!r}")
            time.sleep(0.1)
        port = port_file.read_text().split()[0]
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list").read())
        page = next(p for p in pages if p["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True
        )
        self._id = 0
        self.errors: list[str] = []
        """Console errors and uncaught exceptions the page raised."""
        self.failed_requests: list[str] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        if offline:
            self.send(
                "Network.emulateNetworkConditions",
                offline=True,
                latency=0,
                downloadThroughput=-1,
                uploadThroughput=-1,
            )

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(
                " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
            )
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(params["entry"]["text"])
        elif method == "Network.loadingFailed":
            self.failed_requests.append(params.get("errorText", "failed"))

    def send(self, method: str, **params):
        """Call a DevTools method and return its result (events on the way are recorded)."""
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._event(message)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression on the page (awaited if it is a promise)."""
        result = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        """Poll a JavaScript expression until it is truthy; its value."""

        deadline = time.monotonic() + timeout
        while not (value := self.evaluate(expression)):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            time.sleep(0.1)
        return value

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def click(self, selector: str) -> None:
        """A real mouse click at the middle of the element."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
            ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )

    def type(self, selector: str, text: str) -> None:
        """Focus the element and type ``text`` into it, as a keyboard would."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def screenshot(self, path: Path) -> Path:

        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:
                self.process.kill()
