"""Deterministic, resumable batch order: epoch e of seed s is the same batches in every run.

The trainer resumes mid-epoch from a checkpoint by asking for the same (seed, epoch) from `start_batch` on,
and sees exactly the batches an uninterrupted run would have seen.
"""
import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler


def epoch_batches(num_items: int, batch_size: int, shuffle: bool, seed: int, epoch: int,
                  drop_last: bool) -> list[list[int]]:
    """All batches of one epoch as index lists; shuffled by a permutation drawn from (seed, epoch) alone."""
    order = np.random.default_rng([seed, epoch]).permutation(num_items) if shuffle else np.arange(num_items)
    stop = num_items - num_items % batch_size if drop_last else num_items
    return [order[a:a + batch_size].tolist() for a in range(0, stop, batch_size)]


class EpochBatchSampler(Sampler):
    """Yields the batches of one epoch from `start_batch` on (see `epoch_batches`)."""

    def __init__(self, num_items: int, batch_size: int, shuffle: bool, seed: int, epoch: int,
                 start_batch: int = 0, drop_last: bool = True):
        batches = epoch_batches(num_items, batch_size, shuffle, seed, epoch, drop_last)
        if not 0 <= start_batch <= len(batches):
            raise ValueError(f"start_batch={start_batch} outside an epoch of {len(batches)} batches")
        self.batches = batches[start_batch:]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def make_loader(ds: Dataset, batch_size: int, shuffle: bool, seed: int = 0, epoch: int = 0, start_batch: int = 0,
                num_workers: int = 0, drop_last: bool | None = None, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over one epoch: batches (video [B, 1, T, H, W], labels [B, T, 8, 8]).

    drop_last (default: `shuffle`) drops the ragged last batch of a shuffled epoch. The trainer passes False:
    the published protocol trains on the last partial batch too (ceil(n / batch_size) steps an epoch), and
    validation keeps it so every sequence is scored. Make a new loader each epoch.
    """
    sampler = EpochBatchSampler(len(ds), batch_size, shuffle, seed, epoch, start_batch,
                                shuffle if drop_last is None else drop_last)
    return DataLoader(ds, batch_sampler=sampler, num_workers=num_workers, pin_memory=pin_memory)
