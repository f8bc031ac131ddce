"""The micro-batcher on a fake predictor: rows go back to their requests, batches respect both
limits, a full queue refuses, a cancelled request's texts are never computed."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from multihot.serve.batcher import MicroBatcher, QueueFull


class FakePredictor:
    """Probabilities that name their text: row = [text id, its token count]; records batches."""

    label_names = ["id", "tokens"]

    def __init__(self, gate: threading.Event | None = None):
        self.batches: list[list[int]] = []
        self.gate = gate

    @staticmethod
    def token_count(encoded) -> int:
        return len(encoded)

    def predict_proba_encoded(self, encoded, batch_size=64):
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append([e[0] for e in encoded])
        return np.array([[e[0], len(e)] for e in encoded], dtype=np.float32)


def ids(n: int, start: int = 0, length: int = 3) -> list[list[int]]:
    return [[start + i] * length for i in range(n)]


async def gather(batcher, requests):
    return await asyncio.gather(*(batcher.submit(r) for r in requests))


def run(batcher, coroutine):
    batcher.start()
    try:
        return asyncio.run(coroutine)
    finally:
        batcher.stop(5)


def test_every_row_goes_back_to_its_request_in_order():
    predictor = FakePredictor()
    batcher = MicroBatcher(predictor, max_batch=8, max_wait_ms=20)
    requests = [ids(n, start=100 * k) for k, n in enumerate([1, 5, 3, 12, 2])]
    answers = run(batcher, gather(batcher, requests))
    for request, answer in zip(requests, answers, strict=True):
        np.testing.assert_array_equal(answer[:, 0], [r[0] for r in request])
    assert max(len(b) for b in predictor.batches) <= 8
    assert sum(len(b) for b in predictor.batches) == sum(map(len, requests))
    assert len(predictor.batches) < len(requests) + 2, "concurrent requests were not batched"


def test_batches_keep_under_the_padded_token_budget():
    predictor = FakePredictor()
    batcher = MicroBatcher(predictor, max_batch=64, max_batch_tokens=40, max_wait_ms=20)
    long = [[7] * 30]  # 30 tokens: only one such text fits in 40 padded tokens
    answers = run(batcher, gather(batcher, [long, ids(4, 10, length=5), long]))
    assert [len(a) for a in answers] == [1, 4, 1]
    for batch in predictor.batches:
        lengths = [30 if t == 7 else 5 for t in batch]
        assert len(batch) == 1 or len(batch) * max(lengths) <= 40, predictor.batches


def test_a_text_longer_than_the_budget_still_runs_alone():
    predictor = FakePredictor()
    batcher = MicroBatcher(predictor, max_batch_tokens=10, max_wait_ms=1)
    (answer,) = run(batcher, gather(batcher, [[[5] * 50]]))
    assert answer.tolist() == [[5, 50]]


def test_a_full_queue_refuses_instead_of_growing():
    gate = threading.Event()  # holds the worker inside its first batch
    predictor = FakePredictor(gate)
    batcher = MicroBatcher(predictor, max_batch=2, max_wait_ms=0, max_queue=4)

    async def scenario():
        first = batcher.submit_job(ids(2))
        await asyncio.sleep(0.2)  # the worker takes these two and waits at the gate
        queued = batcher.submit_job(ids(4, 10))
        with pytest.raises(QueueFull):
            batcher.submit_job(ids(1, 20))
        assert batcher.depth == 4
        gate.set()
        return await first.future, await queued.future

    first, queued = run(batcher, scenario())
    assert first[:, 0].tolist() == [0, 1] and queued[:, 0].tolist() == [10, 11, 12, 13]


def test_a_cancelled_request_is_not_computed():
    gate = threading.Event()
    predictor = FakePredictor(gate)
    dropped = []
    batcher = MicroBatcher(predictor, max_batch=1, max_wait_ms=0, on_drop=dropped.append)

    async def scenario():
        busy = batcher.submit_job(ids(1))
        await asyncio.sleep(0.2)
        gone = batcher.submit_job(ids(3, 50))
        batcher.cancel(gone)
        kept = batcher.submit_job(ids(1, 90))
        gate.set()
        await busy.future
        return await kept.future, gone

    kept, gone = run(batcher, scenario())
    assert kept[:, 0].tolist() == [90]
    assert gone.future.cancelled() and dropped == [3]
    assert all(50 not in b for b in predictor.batches)


def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on():
    class Flaky(FakePredictor):
        def predict_proba_encoded(self, encoded, batch_size=64):
            if any(e[0] == 666 for e in encoded):
                raise RuntimeError("boom")
            return super().predict_proba_encoded(encoded, batch_size)

    batcher = MicroBatcher(Flaky(), max_batch=1, max_wait_ms=0)

    async def scenario():
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit([[666]])
        return await batcher.submit(ids(1, 5))

    assert run(batcher, scenario()).tolist() == [[5, 3]]


def test_stop_computes_what_is_queued():
    predictor = FakePredictor()
    batcher = MicroBatcher(predictor, max_batch=64, max_wait_ms=10_000)

    async def scenario():
        job = batcher.submit_job(ids(3))
        await asyncio.sleep(0.05)
        threading.Thread(target=batcher.stop).start()  # stop does not wait out max_wait
        return await asyncio.wait_for(job.future, 5)

    batcher.start()
    answer = asyncio.run(scenario())
    assert answer[:, 0].tolist() == [0, 1, 2]
    with pytest.raises(RuntimeError, match="shutting down"):
        asyncio.run(_submit(batcher))


async def _submit(batcher):
    batcher.submit_job(ids(1))


def test_freed_memory_is_handed_back_every_trim_every_batches(monkeypatch):
    import multihot.serve.batcher as batcher_module

    trims = []
    monkeypatch.setattr(batcher_module, "release_free_memory", lambda: trims.append(1) or True)
    predictor = FakePredictor()
    batcher = MicroBatcher(predictor, max_batch=1, max_wait_ms=0, trim_every=3)
    run(batcher, gather(batcher, [ids(1, start=k) for k in range(7)]))
    assert len(predictor.batches) == 7
    assert len(trims) == 2  # after batches 3 and 6
