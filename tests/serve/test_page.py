"""The page at ``/`` in a real browser: type a text, submit, and the bars show the API's
probabilities. Needs headless Chromium (``.ci/run`` installs Debian's ``chromium``)."""

from __future__ import annotations

import json

import pytest

from helpers import Browser, Server, chromium_or_skip, screenshot_path

pytest.importorskip("fastapi")
pytest.importorskip("websocket")

TEXT = "thank you so much, I love it!"


@pytest.fixture()
def browser(tmp_path):
    browser = Browser(chromium_or_skip(), tmp_path / "profile")
    yield browser
    browser.close()


def submit_text(browser, num_labels: int) -> None:
    """With the page ready: it lists every label; label TEXT and wait for the answer."""
    rows = browser.evaluate("document.querySelectorAll('#labels tbody tr').length")
    assert rows == num_labels
    browser.type("#text", TEXT)
    browser.click("#submit")
    browser.wait_for("document.body.dataset.state === 'answered'")


def test_the_page_shows_the_apis_probabilities(toy_run, browser, tmp_path):
    clf, run = toy_run
    server = Server(run, "--precision", "fp32")
    try:
        browser.open(server.url + "/")
        browser.wait_for("document.body.dataset.state === 'ready'")
        assert browser.evaluate("document.getElementById('model-id').textContent").startswith(
            "toy@"
        )
        submit_text(browser, len(clf.label_names))
        shown = browser.evaluate(
            "JSON.stringify([...document.querySelectorAll('#bars .row')].map(r => "
            "[r.dataset.label, Number(r.dataset.prob), r.classList.contains('fired')]))"
        )
        _, _, answer = server.post({"texts": [TEXT], "return_probs": True})
        expected = answer["predictions"][0]
        shown = json.loads(shown)
        assert [name for name, _, _ in shown] == clf.label_names
        for name, prob, fired in shown:
            assert prob == pytest.approx(expected["probs"][name], abs=1e-9)
            assert fired == (name in expected["labels"])
        chips = browser.evaluate(
            "[...document.querySelectorAll('#fired .chip')].map(c => c.textContent)"
        )
        assert chips == expected["labels"]
        shot = browser.screenshot(screenshot_path(tmp_path, "serve-page.png"))
        assert shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
        assert browser.errors == [], browser.errors
    finally:
        server.stop()


def test_the_page_asks_once_for_the_servers_key(toy_run, browser, tmp_path):
    """Behind --api-key the page itself loads, asks for the key at the first 401, keeps it for
    the tab (a reload does not ask again), and sends it with every request."""
    clf, run = toy_run
    key = "page-key_0123"
    server = Server(run, "--precision", "fp32", "--api-key", key)
    try:
        browser.open(server.url + "/")
        browser.wait_for("document.body.dataset.state === 'key'")
        assert browser.evaluate("document.getElementById('key-form').hidden") is False
        browser.type("#key", "not-the-key")
        browser.click("#key-submit")
        browser.wait_for("document.getElementById('key-status').textContent.includes('refused')")
        assert browser.evaluate("document.body.dataset.state") == "key"
        browser.screenshot(screenshot_path(tmp_path, "serve-page-key.png"))
        browser.type("#key", key)
        browser.click("#key-submit")
        browser.wait_for("document.body.dataset.state === 'ready'")
        assert browser.evaluate("document.getElementById('key-form').hidden") is True
        assert browser.evaluate("sessionStorage.getItem('multihot.api_key')") == key
        submit_text(browser, len(clf.label_names))
        chips = browser.evaluate(
            "[...document.querySelectorAll('#fired .chip')].map(c => c.textContent)"
        )
        _, _, answer = server.request(
            "POST",
            "/v1/predict",
            json.dumps({"texts": [TEXT]}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
        )
        assert chips == answer["predictions"][0]["labels"]
        browser.open(server.url + "/")  # the same tab: the key is remembered
        browser.wait_for("document.body.dataset.state === 'ready'")
        assert browser.evaluate("document.getElementById('key-form').hidden") is True
        # the browser reports each 401 it met as a console error; nothing else may fail
        errors = [e for e in browser.errors if "401" not in e]
        assert errors == [], browser.errors
    finally:
        server.stop()
