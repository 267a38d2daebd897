"""ganbench.losses.history.py: the pool fills first, then returns a stored image about half of the time (binomial
bound), draws only from its generator, and resumes exactly from its state."""

from __future__ import annotations

import math

import pytest
import torch

from ganbench.core.errors import GanbenchError
from ganbench.losses.history import HistoryPool


def labelled(start: int, n: int) -> torch.Tensor:
    """n images (1 x 2 x 2) whose every pixel is their label: start, start + 1, ..."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()


def labels(batch: torch.Tensor) -> list[int]:
    return batch[:, 0, 0, 0].long().tolist()


def feed(pool: HistoryPool, batches: int, batch: int, start: int = 0) -> list[list[int]]:
    return [labels(pool.query(labelled(start + i * batch, batch))) for i in range(batches)]


def test_the_pool_fills_first_and_returns_the_new_images_meanwhile():
    pool = HistoryPool(10, torch.Generator().manual_seed(0))
    assert feed(pool, 2, 5) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert sorted(labels(torch.stack(pool.images))) == list(range(10))


def test_once_full_about_half_of_the_images_come_from_the_pool():
    size, batch, batches = 50, 8, 400
    pool = HistoryPool(size, torch.Generator().manual_seed(1))
    feed(pool, size // batch + 1, batch, start=-1000)  # fill (labels < 0 mark the images used to fill)
    out = feed(pool, batches, batch)
    n = batches * batch
    fresh = [i * batch + j for i in range(batches) for j in range(batch)]
    from_pool = sum(got != new for got, new in zip(sum(out, []), fresh))
    # Binomial(n, 1/2): 4 standard deviations, a false alarm about once in 16,000 seeds
    assert abs(from_pool / n - 0.5) < 4 * math.sqrt(0.25 / n)
    # every image is returned once at most (kept, or stored and later swapped out), never before it was put in
    assert len(set(sum(out, []))) == n
    assert all(x < (i + 1) * batch for i, row in enumerate(out) for x in row)


def test_the_pool_swaps_the_new_image_into_the_slot_it_returns():
    pool = HistoryPool(4, torch.Generator().manual_seed(2))
    feed(pool, 1, 4)
    before = labels(torch.stack(pool.images))
    got = labels(pool.query(labelled(100, 1)))[0]
    after = labels(torch.stack(pool.images))
    if got == 100:  # kept: the pool is unchanged
        assert after == before
    else:  # swapped: the returned image left the pool and the new one took its slot
        slot = before.index(got)
        assert after[slot] == 100 and after[:slot] + after[slot + 1:] == before[:slot] + before[slot + 1:]


def test_same_generator_seed_same_outputs_other_seed_other_outputs():
    runs = [feed(HistoryPool(6, torch.Generator().manual_seed(s)), 20, 4) for s in (5, 5, 6)]
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_the_pool_does_not_touch_the_global_generator():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    feed(HistoryPool(4, torch.Generator().manual_seed(0)), 10, 4)
    assert torch.equal(torch.rand(3), expected)


def test_state_round_trip_continues_identically():
    pool = HistoryPool(6, torch.Generator().manual_seed(7))
    feed(pool, 5, 4)
    state = pool.state_dict()
    uninterrupted = feed(pool, 10, 4, start=1000)
    resumed = HistoryPool(6, torch.Generator().manual_seed(12345))  # another seed: the state must override it
    resumed.load_state_dict(state)
    assert feed(resumed, 10, 4, start=1000) == uninterrupted


def test_size_zero_passes_images_through_and_a_wrong_size_state_is_refused():
    x = labelled(0, 3)
    assert torch.equal(HistoryPool(0, torch.Generator()).query(x), x)
    state = HistoryPool(6, torch.Generator()).state_dict()
    with pytest.raises(GanbenchError, match="resume with the size"):
        HistoryPool(5, torch.Generator()).load_state_dict(state)
    with pytest.raises(GanbenchError, match="torch.Generator"):
        HistoryPool(5)


def test_returned_images_carry_no_gradient():
    x = labelled(0, 4).requires_grad_(True)
    pool = HistoryPool(2, torch.Generator().manual_seed(0))
    assert not pool.query(x * 2).requires_grad
