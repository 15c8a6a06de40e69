"""Length-grouped batches: every index once, similar lengths together, longest batch first, seeded."""

import random

import pytest

from lntune.data.sampler import LengthGroupedBatchSampler, length_grouped_batches
from lntune.errors import LntuneError


def _lengths(n=1000, seed=3):
    rng = random.Random(seed)
    return [rng.randint(10, 2000) for _ in range(n)]


def _padding(lengths, batches):
    return sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)


def test_every_index_once_in_full_batches():
    lengths = _lengths(1003)
    batches = length_grouped_batches(lengths, batch_size=8, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert sorted(len(b) for b in batches) == [3] + [8] * 125
    assert len(LengthGroupedBatchSampler(lengths, 8)) == len(batches) == 126


def test_similar_lengths_share_a_batch():
    lengths = _lengths()
    grouped = length_grouped_batches(lengths, batch_size=8, seed=0)
    order = list(range(len(lengths)))
    random.Random(0).shuffle(order)
    plain = [order[k : k + 8] for k in range(0, len(order), 8)]
    assert _padding(lengths, grouped) * 10 < _padding(lengths, plain)
    # Within a batch the lengths are sorted, longest first.
    assert all([lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True) for b in grouped)


def test_longest_batch_first_and_seeded():
    lengths = _lengths()
    batches = length_grouped_batches(lengths, batch_size=4, seed=7)
    assert lengths.index(max(lengths)) in batches[0]
    assert batches == length_grouped_batches(lengths, batch_size=4, seed=7)
    assert batches != length_grouped_batches(lengths, batch_size=4, seed=8)


def test_small_cases_exact():
    """One mega-batch: sorted longest first, cut, and the longest batch leads whatever the shuffle."""
    assert length_grouped_batches([], 4, 0) == []
    assert length_grouped_batches([5, 1, 9], 2, 0, group_size=10) == [[2, 0], [1]]
    assert length_grouped_batches([3, 1, 2, 4], 2, 0, group_size=2) == [[3, 0], [2, 1]]
    assert length_grouped_batches([3, 1, 2, 4], 2, 5, group_size=2) == [[3, 0], [2, 1]]


def test_sampler_epochs_reshuffle():
    lengths = _lengths(200)
    sampler = LengthGroupedBatchSampler(lengths, batch_size=8, seed=1)
    first = list(sampler)
    assert first == length_grouped_batches(lengths, 8, 1)
    sampler.set_epoch(1)
    assert list(sampler) == length_grouped_batches(lengths, 8, 2) != first


def test_bad_batch_size():
    with pytest.raises(LntuneError, match="batch_size: must be positive, got 0"):
        length_grouped_batches([1, 2], 0, 0)
