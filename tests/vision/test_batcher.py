"""The photo queue alone: admission by count and decode budget, batches, errors, stopping."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from listing_search.data.images import TOO_LARGE, ImageRejected
from listing_search.errors import PhotoQueueFull
from listing_search.vision.batcher import PhotoQueue, QueueLimits

MB = 2**20


class Doubler:
    """A model that doubles its input; records batch sizes; can be held."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.hold = threading.Event()
        self.hold.set()

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, None]:
        self.sizes.append(len(batch))
        self.hold.wait(10)
        return batch * 2, None


def test_outputs_match_inputs_under_concurrency() -> None:
    model = Doubler()
    q = PhotoQueue(model, QueueLimits(in_flight=8, batch_max=4, batch_wait_s=0.01))
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda i: q.embed(lambda: np.full(3, float(i)))[0], range(32)))
    q.close()
    assert [float(o[0]) for o in outs] == [2.0 * i for i in range(32)]
    assert sum(model.sizes) == 32 and max(model.sizes) <= 4
    assert q.stats().batches == len(model.sizes) and q.stats().batched_jobs == 32


def test_a_second_big_decode_waits_while_a_small_one_is_admitted() -> None:
    model = Doubler()
    model.hold.clear()
    q = PhotoQueue(model, QueueLimits(in_flight=4, budget_bytes=100 * MB, wait_s=0.2))
    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(q.embed, lambda: np.zeros(3), 80 * MB)
        while q.stats().in_flight == 0:
            time.sleep(0.005)
        with pytest.raises(PhotoQueueFull) as err:
            q.embed(lambda: np.zeros(3), 80 * MB)
        assert err.value.retry_after == 1 and "1 photos in progress" in str(err.value)
        small = threading.Thread(target=q.embed, args=(lambda: np.zeros(3), 1 * MB))
        small.start()
        while q.stats().in_flight < 2:  # admitted beside the big one: it fits the budget
            time.sleep(0.005)
        model.hold.set()
        big.result(timeout=10)
        small.join(10)
    assert q.stats().rejected == 1 and q.stats().decode_bytes == 0


def test_a_photo_bigger_than_the_whole_budget_is_refused_undecoded() -> None:
    """Running it even alone would hold more than the budget; one that fits exactly still runs."""
    q = PhotoQueue(Doubler(), QueueLimits(budget_bytes=10 * MB))
    decoded: list[int] = []
    with pytest.raises(ImageRejected) as err:
        q.embed(lambda: decoded.append(1) or np.ones(2), 50 * MB)
    assert err.value.reason == TOO_LARGE and "50 MB, more than the 10 MB" in str(err.value)
    assert decoded == [] and q.stats().in_flight == 0
    assert float(q.embed(lambda: np.ones(2), 10 * MB)[0][0]) == 2.0


def test_model_errors_reach_every_caller_and_decode_errors_free_their_slot() -> None:
    class Broken:
        def run(self, batch: np.ndarray) -> None:
            raise RuntimeError("model down")

    q = PhotoQueue(Broken(), QueueLimits(in_flight=1, wait_s=0.1))
    with pytest.raises(RuntimeError, match="model down"):
        q.embed(lambda: np.zeros(3))

    def bad_photo() -> np.ndarray:
        raise ValueError("corrupt")

    with pytest.raises(ValueError):
        q.embed(bad_photo)
    assert q.stats().in_flight == 0 and q.stats().rejected == 0

