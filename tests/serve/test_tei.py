"""``POST /predict``, the route in the shape of Hugging Face text-embeddings-inference (TEI): what
TEI's clients send, answered in TEI's shape with the native route's probabilities and decisions,
on a real server subprocess."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import TOY_TEXTS, Server, serving

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

KEY = "tei-Key_0123456789"
LONG_TEXT = "happy joy " * 60
"""Far past the toy model's max_length of 32 tokens."""


@pytest.fixture(scope="module")
def server(toy_run):
    _, run = toy_run
    with serving(run, "--precision", "fp32", "--max-texts", 8) as server:
        yield server


@pytest.fixture(scope="module")
def keyed(toy_run):
    _, run = toy_run
    with serving(run, "--precision", "fp32", env={"MULTIHOT_API_KEY": KEY}) as server:
        yield server


@pytest.fixture()
def hub_online(monkeypatch):
    """huggingface_hub refuses every request while HF_HUB_OFFLINE is set (as conftest sets it);
    its client talks only to the test's loopback server here."""
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)
    return hub


def native(server: Server, texts: list[str]) -> list[dict]:
    status, _, answer = server.post({"texts": texts, "return_probs": True})
    assert status == 200, answer
    return answer["predictions"]


def thresholds_of(server: Server) -> dict[str, float]:
    return {label["name"]: label["threshold"] for label in server.get("/v1/labels")[2]["labels"]}


def assert_tei_ranking(items: list[dict], expected: dict, thresholds: dict[str, float]) -> None:
    """``items`` (one text's TEI answer) hold the native route's probabilities, highest first,
    its decisions and the run's thresholds."""
    assert [set(item) for item in items] == [{"label", "score", "threshold", "predicted"}] * len(
        items
    )
    assert sorted(item["label"] for item in items) == sorted(expected["probs"])
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    for item in items:
        assert item["score"] == expected["probs"][item["label"]]  # the same float32 values
        assert item["threshold"] == thresholds[item["label"]]
        assert item["predicted"] == (item["label"] in expected["labels"])


def test_the_tei_client_reads_the_answer(server, hub_online, toy_run):
    """huggingface_hub's InferenceClient, pointed at the route as at a TEI endpoint's, sends
    ``{"inputs": text, "parameters": {}}`` and parses the answer; the extra keys ride along."""
    clf, _ = toy_run
    client = hub_online.InferenceClient(model=f"{server.url}/predict")
    answer = client.text_classification(TOY_TEXTS[0])
    expected = native(server, TOY_TEXTS[:1])[0]
    # It parses a list of lists and keeps the first: against TEI's one list for one text, that
    # is the top label, as it is here.
    top = max(expected["probs"], key=expected["probs"].get)
    assert isinstance(answer, hub_online.TextClassificationOutputElement)
    assert (answer.label, answer.score) == (top, expected["probs"][top])
    assert answer.predicted == (top in expected["labels"]) and answer.threshold > 0
    assert top in clf.label_names


def test_one_text_gives_one_ranked_list(server):
    status, headers, items = server.post({"inputs": TOY_TEXTS[1]}, "/predict")
    assert status == 200 and headers["x-model-id"].startswith("toy@")
    assert_tei_ranking(items, native(server, TOY_TEXTS[1:2])[0], thresholds_of(server))


@pytest.mark.parametrize(
    "inputs",
    [TOY_TEXTS[:4], [[t] for t in TOY_TEXTS[:4]], [TOY_TEXTS[0], [TOY_TEXTS[1]], *TOY_TEXTS[2:4]]],
    ids=["strings", "tei-batch", "mixed"],
)
def test_a_batch_gives_a_list_per_text(server, inputs):
    status, _, answer = server.post({"inputs": inputs, "truncate": False}, "/predict")
    assert status == 200 and len(answer) == 4
    thresholds = thresholds_of(server)
    for items, expected in zip(answer, native(server, TOY_TEXTS[:4]), strict=True):
        assert_tei_ranking(items, expected, thresholds)


def test_raw_scores_are_the_log_odds_of_the_probabilities(server):
    """The toy model is overfit: its logits reach past what a float32 probability tells apart
    from 1, which read as MAX_LOG_ODDS; far negative ones are kept."""
    from multihot.serve.routes.tei import MAX_LOG_ODDS

    status, _, raw = server.post({"inputs": TOY_TEXTS[:3], "raw_scores": True}, "/predict")
    assert status == 200
    thresholds = thresholds_of(server)
    scores = []
    for items, expected in zip(raw, native(server, TOY_TEXTS[:3]), strict=True):
        assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
        for item in items:
            p, t = expected["probs"][item["label"]], thresholds[item["label"]]
            odds = MAX_LOG_ODDS if p == 1.0 else np.log(p) - np.log1p(-p)
            assert item["score"] == pytest.approx(odds, abs=1e-6)
            assert item["threshold"] == pytest.approx(np.log(t / (1 - t)), abs=1e-6)
            assert item["predicted"] == (item["label"] in expected["labels"])
            scores.append(item["score"])
    assert min(scores) < -MAX_LOG_ODDS  # not clipped on the low side


def test_truncate_false_refuses_a_text_the_model_would_cut(server):
    status, _, answer = server.post({"inputs": [TOY_TEXTS[0], LONG_TEXT]}, "/predict")
    assert status == 200 and len(answer) == 2  # cut as the native route cuts it, by default
    expected = native(server, [LONG_TEXT])[0]  # alone: padded otherwise, so rounded otherwise
    assert {i["label"]: i["score"] for i in answer[1]} == pytest.approx(expected["probs"], abs=1e-6)
    status, _, answer = server.post({"inputs": LONG_TEXT, "truncate": None}, "/predict")
    assert status == 200
    status, _, body = server.post(
        {"inputs": [TOY_TEXTS[0], LONG_TEXT], "truncate": False}, "/predict"
    )
    assert status == 422 and body["error"]["code"] == "input_too_long"
    assert "inputs[1]" in body["error"]["message"] and body["error"]["limit"] == 32


def test_left_truncation_is_refused_only_where_it_would_cut(server):
    body = {"inputs": TOY_TEXTS[0], "truncation_direction": "Left"}
    assert server.post(body, "/predict")[0] == 200
    status, _, answer = server.post({**body, "inputs": LONG_TEXT}, "/predict")
    assert status == 422 and answer["error"]["code"] == "truncation_direction_unsupported"
    assert server.post({"inputs": LONG_TEXT, "truncation_direction": "right"}, "/predict")[0] == 200


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"texts": ["a"]}, 422, "invalid_request"),
        ({"inputs": 3}, 422, "invalid_request"),
        ({"inputs": []}, 422, "invalid_request"),
        ({"inputs": [["a text", "its pair"]]}, 422, "invalid_request"),
        ({"inputs": [["a", "b", "c"]]}, 422, "invalid_request"),
        ({"inputs": ["ok", None]}, 422, "invalid_request"),
        ({"inputs": "   "}, 422, "invalid_request"),
        ({"inputs": "ok", "raw_scores": "yes"}, 422, "invalid_request"),
        ({"inputs": "ok", "truncate": 0}, 422, "invalid_request"),
        ({"inputs": "ok", "truncation_direction": "up"}, 422, "invalid_request"),
        ({"inputs": ["a"] * 9}, 413, "too_many_texts"),
        (["a list"], 422, "invalid_request"),
    ],
)
def test_malformed_requests_get_their_4xx(server, body, status, code):
    got, _, answer = server.post(body, "/predict")
    assert (got, answer["error"]["code"]) == (status, code), answer


def test_fields_tei_ignores_are_ignored_and_json_is_required(server):
    status, _, answer = server.post(
        {"inputs": TOY_TEXTS[0], "parameters": {"top_k": 1}}, "/predict"
    )
    assert status == 200 and len(answer) == len(thresholds_of(server))
    body = json.dumps({"inputs": TOY_TEXTS[0]}).encode()
    status, _, answer = server.request("POST", "/predict", body, {"Content-Type": "text/plain"})
    assert status == 415 and answer["error"]["code"] == "unsupported_media_type"


def test_the_route_is_documented(server):
    schema = server.get("/openapi.json")[2]
    route = schema["paths"]["/predict"]["post"]
    assert "raw_scores" in json.dumps(route["requestBody"])
    assert {"200", "413", "422", "503"} <= set(route["responses"])


def test_with_a_key_the_route_needs_it(keyed, hub_online):
    body = json.dumps({"inputs": TOY_TEXTS[0]}).encode()
    status, headers, answer = keyed.request(
        "POST", "/predict", body, {"Content-Type": "application/json"}
    )
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    status, _, answer = keyed.request(
        "POST",
        "/predict",
        body,
        {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    assert status == 200 and answer[0]["label"]
    # TEI's client sends the key as TEI's --api-key expects it: Authorization: Bearer KEY
    with pytest.raises(hub_online.errors.HfHubHTTPError) as caught:
        hub_online.InferenceClient(model=f"{keyed.url}/predict").text_classification("hi")
    assert caught.value.response.status_code == 401
    client = hub_online.InferenceClient(model=f"{keyed.url}/predict", api_key=KEY)
    assert client.text_classification(TOY_TEXTS[0]).label == answer[0]["label"]


def test_a_baseline_run_reads_every_word_so_truncate_refuses_nothing(baseline_run):
    server = Server(baseline_run)
    try:
        status, _, items = server.post({"inputs": LONG_TEXT, "truncate": False}, "/predict")
        assert status == 200
        expected = native(server, [LONG_TEXT])[0]
        assert_tei_ranking(items, expected, thresholds_of(server))
    finally:
        assert server.stop() == 0
