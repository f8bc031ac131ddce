"""Before the server says it is ready it computes the largest batch its batcher can form, so the
memory it computes in is taken at start (its memory when ready is about its memory under load)."""

from __future__ import annotations

import pytest

from multihot.core.errors import ConfigError
from multihot.inference.predictor import Predictor
from multihot.serve.config import ServeConfig

pytest.importorskip("fastapi")

from multihot.serve.state import ServerState  # noqa: E402


@pytest.mark.parametrize(
    ("max_batch", "max_batch_tokens", "texts"),
    [
        (64, 8192, 64),  # max_batch texts of max_length (32) tokens
        (64, 100, 3),  # as many of them as max_batch_tokens holds
        (64, 20, 1),  # one at least: the batcher computes a text past the cap alone
        (1, 8192, 1),
    ],
)
def test_warm_up_computes_the_largest_batch(toy_run, max_batch, max_batch_tokens, texts):
    predictor = Predictor.load(toy_run[1])
    assert predictor.config.model.max_length == 32
    passes = []
    compute = predictor.predict_proba_encoded

    def recorded(encoded, batch_size=64):
        passes.append((len(encoded), batch_size, max(map(predictor.token_count, encoded))))
        return compute(encoded, batch_size)

    predictor.predict_proba_encoded = recorded
    config = ServeConfig(max_batch=max_batch, max_batch_tokens=max_batch_tokens)
    state = ServerState(predictor, config)
    assert not state.ready
    state.warm_up()
    assert state.ready
    first, largest = passes
    assert first[:2] == (1, 1)
    assert largest == (texts, texts, 32)  # texts of max_length tokens, in one forward pass


def test_batch_tokens_default_to_the_device(toy_run):
    """2048 padded tokens a pass on a CPU, where larger batches add memory and no speed; 8192 on
    a GPU; what the user gives either way. The server fills it in, and reports it."""
    assert ServeConfig().on_device(gpu=False).max_batch_tokens == 2048
    assert ServeConfig().on_device(gpu=True).max_batch_tokens == 8192
    assert ServeConfig(max_batch_tokens=100).on_device(gpu=True).max_batch_tokens == 100
    state = ServerState(Predictor.load(toy_run[1]), ServeConfig())
    assert state.batcher.max_batch_tokens == state.model_info["limits"]["max_batch_tokens"] == 2048
    with pytest.raises(ConfigError, match="max_batch_tokens: expected a positive integer"):
        ServeConfig(max_batch_tokens=0)
