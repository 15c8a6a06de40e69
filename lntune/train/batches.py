"""The order of training samples, as a plan of optimizer steps that every process agrees on.

Each epoch's order is a pure function of (seed, epoch), so a resumed run sees exactly the batches an
uninterrupted one would. A step is `grad_accum` global micro-batches of `batch_size · world_size`
samples; process `rank` takes every `world_size`-th sample of each, so one process with the same global
batch sees the same samples.
"""

import random

from lntune.data.sampler import length_grouped_batches


def epoch_micro_batches(lengths: list[int], global_batch: int, seed: int, epoch: int, group_by_length: bool,
                        world_size: int) -> list[list[int]]:
    epoch_seed = seed * 100_003 + epoch
    if group_by_length:
        batches = length_grouped_batches(lengths, global_batch, epoch_seed)
    else:
        order = list(range(len(lengths)))
        random.Random(epoch_seed).shuffle(order)
        batches = [order[i:i + global_batch] for i in range(0, len(order), global_batch)]
    # every process needs at least one sample in every micro-batch
    return [b for b in batches if len(b) >= world_size]


def steps_per_epoch(num_micro_batches: int, grad_accum: int) -> int:
    return num_micro_batches // grad_accum


def rank_slice(batch: list[int], rank: int, world_size: int) -> list[int]:
    return batch[rank::world_size]
