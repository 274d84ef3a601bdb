"""The SegDecNet training epoch: every positive image and as many negatives, chosen per epoch.

Crack data sets hold more crack-free (negative) images than cracked (positive) ones. SegDecNet
trains each epoch on all positives and ``k = min(n_pos, n_neg)`` negatives, so the two classes
weigh alike, and picks those negatives anew every epoch:

* uniformly at random (``frequency_sampling=False``), or
* by frequency of use (``frequency_sampling=True``): the ``k`` negatives used least so far, ties
  broken at random. The original code draws from a probability sharply peaked on the least-used
  images; taking them outright is the limit of that rule, and it makes the use counts of any two
  negatives differ by at most one at every epoch, so every negative is seen before any is seen
  twice.

The plan of epoch ``e`` is a function of ``(seed, e)`` and of the use counts before it: its random
generator is seeded from ``(seed, e)`` alone, so the counts are the whole state to save, and a
resumed run draws the same epochs as an uninterrupted one. Under DistributedDataParallel every
rank computes the same plan and takes its share of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["FrequencySampler"]

STATE_VERSION = 1


class FrequencySampler(torch.utils.data.Sampler[int]):
    """Per-epoch plan of dataset indices: all positives and a balanced draw of negatives.

    Call :meth:`set_epoch` before iterating each epoch (as with ``DistributedSampler``); it draws
    the epoch's negatives and adds them to the use counts. Calling it again with the same epoch
    keeps that plan, and iterating twice in one epoch yields the same order. Iterating before any
    :meth:`set_epoch` plans epoch 0.

    Args:
        labels: one bool per dataset item, True for a positive (cracked) image.
        frequency_sampling: pick the least-used negatives (True) or uniformly random ones.
        use_negatives: train on negatives at all; False gives epochs of positives only.
        seed: seed of every epoch's generator.
        num_replicas: number of distributed ranks sharing each epoch.
        rank: this process's rank in ``[0, num_replicas)``.

    Raises:
        ValueError: no positives, or a bad ``num_replicas``/``rank``.
    """

    def __init__(
        self,
        labels: Sequence[bool],
        *,
        frequency_sampling: bool,
        use_negatives: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        flags = np.asarray(labels, dtype=bool).reshape(-1)
        self.positive_indices = np.flatnonzero(flags)
        self.negative_indices = np.flatnonzero(~flags)
        if self.positive_indices.size == 0:
            raise ValueError(
                "FrequencySampler needs at least one positive image: an epoch takes every "
                "positive and as many negatives"
            )
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(
                f"need num_replicas >= 1 and 0 <= rank < num_replicas; "
                f"got num_replicas={num_replicas}, rank={rank}"
            )
        self.frequency_sampling = bool(frequency_sampling)
        self.use_negatives = bool(use_negatives)
        self.seed = int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        n_neg = self.negative_indices.size
        self.negatives_per_epoch = min(self.positive_indices.size, n_neg) if use_negatives else 0
        self.epoch_size = self.positive_indices.size + self.negatives_per_epoch
        self.num_samples = math.ceil(self.epoch_size / num_replicas)
        self._counts = np.zeros(n_neg, dtype=np.int64)
        self._counts_before = self._counts.copy()
        self._epoch: int | None = None
        self._plan = np.empty(0, dtype=np.int64)

    @property
    def epoch(self) -> int | None:
        """The epoch planned last, or None before the first."""
        return self._epoch

    @property
    def use_counts(self) -> np.ndarray:
        """(n_neg,) int64: epochs each negative (in ``negative_indices`` order) was planned in."""
        return self._counts.copy()

    def set_epoch(self, epoch: int) -> None:
        """Plan ``epoch``: draw its negatives, count their use and shuffle the epoch's indices.

        Raises:
            ValueError: ``epoch`` is negative or earlier than the epoch planned last.
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if self._epoch is not None:
            if epoch == self._epoch:
                return
            if epoch < self._epoch:
                raise ValueError(
                    f"epoch {epoch} comes before the planned epoch {self._epoch}; load an "
                    "earlier state_dict to go back"
                )
        self._make_plan(epoch, self._counts)

    def epoch_plan(self) -> np.ndarray:
        """(epoch_size,) int64: the current epoch's dataset indices, all ranks, in order."""
        if self._epoch is None:
            self.set_epoch(0)
        return self._plan.copy()

    def __iter__(self) -> Iterator[int]:
        plan = self.epoch_plan()
        padding = self.num_samples * self.num_replicas - plan.size
        if padding:
            plan = np.concatenate([plan, np.resize(plan, padding)])
        return iter(plan[self.rank :: self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the same sequence of epochs (JSON-serialisable)."""
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "frequency_sampling": self.frequency_sampling,
            "use_negatives": self.use_negatives,
            "num_positives": int(self.positive_indices.size),
            "num_negatives": int(self.negative_indices.size),
            "epoch": self._epoch,
            "counts_before_epoch": self._counts_before.tolist(),
            "counts": self._counts.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`, re-planning its epoch exactly.

        Raises:
            ValueError: the state belongs to a sampler with other data or settings.
        """
        expected = {
            "version": STATE_VERSION,
            "seed": self.seed,
            "frequency_sampling": self.frequency_sampling,
            "use_negatives": self.use_negatives,
            "num_positives": int(self.positive_indices.size),
            "num_negatives": int(self.negative_indices.size),
        }
        mismatched = {k: (state.get(k), v) for k, v in expected.items() if state.get(k) != v}
        if mismatched:
            detail = ", ".join(f"{k}: saved {s!r}, here {v!r}" for k, (s, v) in mismatched.items())
            raise ValueError(f"sampler state does not match this sampler ({detail})")
        before = np.asarray(state["counts_before_epoch"], dtype=np.int64)
        if state["epoch"] is None:
            self._counts = before.copy()
            self._counts_before = before.copy()
            self._epoch = None
            self._plan = np.empty(0, dtype=np.int64)
            return
        self._make_plan(int(state["epoch"]), before)
        if not np.array_equal(self._counts, np.asarray(state["counts"], dtype=np.int64)):
            raise ValueError("sampler state is inconsistent: its counts do not follow its plan")

    def _make_plan(self, epoch: int, counts: np.ndarray) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        k = self.negatives_per_epoch
        if self.frequency_sampling:
            tie_break = rng.random(counts.size)
            chosen = np.lexsort((tie_break, counts))[:k]
        else:
            chosen = rng.choice(counts.size, size=k, replace=False)
        self._counts_before = counts.copy()
        self._counts = counts.copy()
        self._counts[chosen] += 1
        indices = np.concatenate([self.positive_indices, self.negative_indices[chosen]])
        self._plan = rng.permutation(indices).astype(np.int64)
        self._epoch = epoch
