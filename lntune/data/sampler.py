"""Length-grouped batching: batches of similar token length, so little compute is spent on padding.

The indices are shuffled with the seed, cut into mega-batches of `batch_size * group_size`, each sorted by
length (longest first) and cut into batches; the batch order is then shuffled, and the batch holding the
longest sample goes first so an out-of-memory error shows at step 1, not hours in. Lengths come from
`LlavaDataset.lengths` (computed from the text alone, no image is read).

    sampler = LengthGroupedBatchSampler(dataset.lengths, batch_size=8, seed=0)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collator)   # sampler.set_epoch(e) per epoch
"""

from __future__ import annotations

import random

from lntune.errors import LntuneError


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, group_size: int = 50) -> list[list[int]]:
    """Every index of `lengths` exactly once, in batches of at most `batch_size` samples of similar length."""
    if batch_size < 1:
        raise LntuneError(f"batch_size: must be positive, got {batch_size}")
    if not lengths:
        return []
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = batch_size * group_size
    batches = []
    for start in range(0, len(order), mega):
        group = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches += [group[k : k + batch_size] for k in range(0, len(group), batch_size)]
    rng.shuffle(batches)
    longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
    batches.insert(0, batches.pop(longest))
    return batches


class LengthGroupedBatchSampler:
    """A DataLoader batch_sampler over `length_grouped_batches`; `set_epoch(e)` reshuffles with seed + e."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int = 0, group_size: int = 50):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group_size = group_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(length_grouped_batches(self.lengths, self.batch_size, self.seed + self.epoch, self.group_size))

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size) if self.lengths else 0
