"""``/docs`` without the internet: Swagger UI's files come from the server itself (the
swagger-ui-bundle package), and the page lists the API. The browser test fails every request
that does not go to the server and records each one (needs headless Chromium, as
``test_page.py``)."""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse

import pytest

from helpers import Browser, Server, chromium_or_skip, screenshot_path, serving

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

KEY = "docs-Key_0123456789"
LISTED = ("/v1/predict", "/predict", "/v1/labels", "/v1/model", "/healthz", "/readyz", "/metrics")
"""Endpoints the page must list."""


class GuardedBrowser(Browser):
    """A :class:`helpers.Browser` that sees every request the page makes before it leaves
    (DevTools' Fetch domain): one to the allowed origin goes on, any other is failed, and each
    is recorded in :attr:`requested`."""

    def __init__(self, executable: str, profile, origin: str):
        self.origin = origin
        self.requested: list[str] = []
        self._own_id = 10**9  # ids of the commands sent from _event, apart from send()'s
        super().__init__(executable, profile)
        self.send("Fetch.enable", patterns=[{"urlPattern": "*"}])

    def _event(self, message: dict) -> None:
        if message.get("method") != "Fetch.requestPaused":
            return super()._event(message)
        params = message["params"]
        url = params["request"]["url"]
        self.requested.append(url)
        allowed = url == self.origin or url.startswith(self.origin + "/")
        command = "Fetch.continueRequest" if allowed else "Fetch.failRequest"
        extra = {} if allowed else {"errorReason": "BlockedByClient"}
        # Sent without waiting for the answer, which arrives later as a message with no method
        # (ignored): waiting here would swallow the answer that send() waits for.
        self._own_id += 1
        self.ws.send(
            json.dumps(
                {
                    "id": self._own_id,
                    "method": command,
                    "params": {"requestId": params["requestId"], **extra},
                }
            )
        )

    def elsewhere(self) -> list[str]:
        """The requests that went, or tried to go, anywhere but the allowed origin."""
        return [
            url
            for url in self.requested
            if not (url == self.origin or url.startswith(self.origin + "/"))
        ]


@pytest.fixture(scope="module")
def server(toy_run):
    _, run = toy_run
    with serving(run, "--precision", "fp32") as server:
        yield server


def fetch(server: Server, path: str, headers=None) -> tuple[int, dict[str, str], bytes]:
    """``(status, headers, body)`` of a GET, the body as bytes (the favicon is no text)."""
    address = urllib.parse.urlsplit(server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def local_urls(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)="([^"]+)\"""", page) + re.findall(r"url: '([^']+)'", page)


def test_the_page_names_only_the_servers_own_files(server):
    status, headers, page = server.get("/docs")
    assert status == 200 and headers["content-type"].startswith("text/html")
    urls = local_urls(page)
    assert len(urls) == 4 and all(url.startswith("/") for url in urls), urls
    assert "cdn" not in page and "http" not in page.lower().replace("http-equiv", "")
    for url in urls:
        status, headers, body = fetch(server, url)
        assert status == 200 and body, url
    status, headers, _ = fetch(server, "/docs/assets/swagger-ui-bundle.js")
    assert headers["content-type"].startswith("text/javascript")
    # The package's other files (its index.html loads the Petstore from the internet) are not
    # served: only the page's.
    assert server.get("/docs/assets/index.html")[0] == 404


def test_with_a_key_the_page_and_its_files_need_it(toy_run):
    _, run = toy_run
    with serving(run, "--precision", "fp32", env={"MULTIHOT_API_KEY": KEY}) as server:
        for path in ("/docs", "/docs/assets/swagger-ui.css", "/docs/assets/favicon-32x32.png"):
            status, headers, _ = fetch(server, path)
            assert status == 401 and headers["www-authenticate"].startswith("Bearer"), path
            assert fetch(server, path, {"Authorization": f"Bearer {KEY}"})[0] == 200, path


def test_the_docs_page_lists_the_api_with_the_internet_blocked(server, tmp_path):
    address = urllib.parse.urlsplit(server.url)
    origin = f"{address.scheme}://{address.netloc}"
    browser = GuardedBrowser(chromium_or_skip(), tmp_path / "profile", origin)
    try:
        browser.open(server.url + "/docs")
        browser.wait_for("document.querySelectorAll('.opblock').length > 0")
        paths = browser.evaluate(
            "[...document.querySelectorAll('.opblock-summary-path')]"
            ".map(e => e.dataset.path || e.textContent.trim())"
        )
        assert set(LISTED) <= set(paths), paths
        title = browser.evaluate("document.querySelector('.title')?.textContent || ''")
        assert title.startswith("multihot")
        shot = browser.screenshot(screenshot_path(tmp_path, "serve-docs.png"))
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
        assert browser.elsewhere() == [], browser.elsewhere()
        assert f"{origin}/docs/assets/swagger-ui-bundle.js" in browser.requested
        assert f"{origin}/openapi.json" in browser.requested
        assert browser.errors == [], browser.errors
        assert browser.failed_requests == [], browser.failed_requests
    finally:
        browser.close()
