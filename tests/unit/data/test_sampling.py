"""Tests for crackkit.data.sampling: balanced epochs, frequency-of-use draws, resume, ranks."""

from __future__ import annotations

import json
from functools import partial

import numpy as np
import pytest
import torch

from crackkit.data.sampling import FrequencySampler


def _labels(n_pos: int, n_neg: int) -> list[bool]:
    """Positives and negatives interleaved, so indices of both kinds are mixed."""
    labels = [True] * n_pos + [False] * n_neg
    return [labels[i] for i in np.random.default_rng(7).permutation(len(labels))]


def _epochs(sampler: FrequencySampler, epochs: range) -> list[list[int]]:
    plans = []
    for epoch in epochs:
        sampler.set_epoch(epoch)
        plans.append(list(sampler))
    return plans


def _spread(sampler: FrequencySampler) -> int:
    counts = sampler.use_counts
    return int(counts.max() - counts.min())


@pytest.mark.parametrize("frequency_sampling", [True, False])
def test_epoch_holds_every_positive_and_as_many_distinct_negatives(
    frequency_sampling: bool,
) -> None:
    """Each epoch: all positives once, k = n_pos distinct negatives, in shuffled order."""
    labels = _labels(10, 30)
    sampler = FrequencySampler(labels, frequency_sampling=frequency_sampling, seed=0)
    positives = {i for i, positive in enumerate(labels) if positive}
    assert len(sampler) == 20
    for plan in _epochs(sampler, range(4)):
        assert len(plan) == len(set(plan)) == 20
        assert positives <= set(plan)
        assert sum(not labels[i] for i in plan) == 10
        assert plan != sorted(plan)


def test_frequency_sampling_keeps_use_counts_within_one() -> None:
    """With n_neg = 3·n_pos the counts never differ by more than one; 3 epochs use each once."""
    sampler = FrequencySampler(_labels(10, 30), frequency_sampling=True, seed=3)
    for epoch in range(12):
        sampler.set_epoch(epoch)
        assert _spread(sampler) <= 1
        if epoch % 3 == 2:
            np.testing.assert_array_equal(sampler.use_counts, (epoch + 1) // 3)


def test_frequency_sampling_spreads_less_than_uniform() -> None:
    """Over 30 epochs uniform draws leave a wider count spread than frequency-of-use draws."""
    spreads = {}
    for frequency_sampling in (True, False):
        sampler = FrequencySampler(_labels(10, 30), frequency_sampling=frequency_sampling, seed=5)
        _epochs(sampler, range(30))
        assert sampler.use_counts.sum() == 30 * 10
        spreads[frequency_sampling] = _spread(sampler)
    assert spreads[True] == 0
    assert spreads[False] > 1


@pytest.mark.parametrize("frequency_sampling", [True, False])
def test_same_seed_same_plan(frequency_sampling: bool) -> None:
    """Two samplers with one seed plan identical epochs; another seed plans different ones."""
    make = partial(FrequencySampler, _labels(6, 20), frequency_sampling=frequency_sampling)
    assert _epochs(make(seed=1), range(5)) == _epochs(make(seed=1), range(5))
    assert _epochs(make(seed=1), range(5)) != _epochs(make(seed=2), range(5))


@pytest.mark.parametrize("frequency_sampling", [True, False])
@pytest.mark.parametrize("iterate_saved_epoch", [True, False])
def test_state_dict_round_trip_continues_the_sequence(
    frequency_sampling: bool, iterate_saved_epoch: bool
) -> None:
    """A sampler restored from a JSON state after epoch 3 continues exactly like the original."""
    labels = _labels(8, 25)
    make = partial(FrequencySampler, labels, frequency_sampling=frequency_sampling, seed=11)
    reference = _epochs(make(), range(8))
    first = make()
    assert _epochs(first, range(3)) == reference[:3]
    first.set_epoch(3)
    if iterate_saved_epoch:
        assert list(first) == reference[3]
    state = json.loads(json.dumps(first.state_dict()))
    resumed = make()
    resumed.load_state_dict(state)
    np.testing.assert_array_equal(resumed.use_counts, first.use_counts)
    assert _epochs(resumed, range(3, 8)) == reference[3:]


def test_fresh_state_round_trip() -> None:
    """The state of a sampler that has planned nothing restores to the same start."""
    labels = _labels(4, 9)
    first = FrequencySampler(labels, frequency_sampling=True, seed=0)
    resumed = FrequencySampler(labels, frequency_sampling=True, seed=0)
    resumed.load_state_dict(first.state_dict())
    assert resumed.epoch is None
    assert _epochs(resumed, range(3)) == _epochs(first, range(3))


@pytest.mark.parametrize(
    "change", [{"seed": 1}, {"frequency_sampling": False}, {"use_negatives": False}]
)
def test_state_from_another_sampler_is_refused(change: dict) -> None:
    """Loading the state of a sampler with other settings raises."""
    settings = {"frequency_sampling": True, "use_negatives": True, "seed": 0}
    source = FrequencySampler(_labels(4, 9), **settings)
    source.set_epoch(0)
    target = FrequencySampler(_labels(4, 9), **(settings | change))
    with pytest.raises(ValueError, match="does not match"):
        target.load_state_dict(source.state_dict())


def test_set_epoch_is_idempotent_and_refuses_going_back() -> None:
    """Re-setting the current epoch keeps plan and counts; an earlier epoch is refused."""
    sampler = FrequencySampler(_labels(5, 12), frequency_sampling=True, seed=0)
    sampler.set_epoch(2)
    plan, counts = list(sampler), sampler.use_counts
    sampler.set_epoch(2)
    assert list(sampler) == list(sampler) == plan
    np.testing.assert_array_equal(sampler.use_counts, counts)
    with pytest.raises(ValueError, match="before"):
        sampler.set_epoch(1)


def test_iterating_before_set_epoch_plans_epoch_zero() -> None:
    """Without set_epoch the sampler plans epoch 0."""
    labels = _labels(5, 12)
    implicit = FrequencySampler(labels, frequency_sampling=False, seed=4)
    explicit = FrequencySampler(labels, frequency_sampling=False, seed=4)
    explicit.set_epoch(0)
    assert list(implicit) == list(explicit)
    assert implicit.epoch == 0


@pytest.mark.parametrize("frequency_sampling", [True, False])
def test_without_negatives_only_positives(frequency_sampling: bool) -> None:
    """use_negatives=False gives epochs of the positives only and counts nothing."""
    labels = _labels(7, 20)
    sampler = FrequencySampler(
        labels, frequency_sampling=frequency_sampling, use_negatives=False, seed=0
    )
    assert len(sampler) == 7
    for plan in _epochs(sampler, range(3)):
        assert sorted(plan) == [i for i, positive in enumerate(labels) if positive]
    assert not sampler.use_counts.any()


@pytest.mark.parametrize("frequency_sampling", [True, False])
def test_fewer_negatives_than_positives_uses_all_of_them(frequency_sampling: bool) -> None:
    """With n_neg < n_pos every epoch holds every image."""
    sampler = FrequencySampler(_labels(10, 4), frequency_sampling=frequency_sampling, seed=0)
    for plan in _epochs(sampler, range(3)):
        assert sorted(plan) == list(range(14))


@pytest.mark.parametrize("num_replicas", [2, 3, 7])
def test_ranks_partition_the_epoch(num_replicas: int) -> None:
    """Ranks get equal shares that cover the epoch, padded by repetition, and agree on counts."""
    labels = _labels(10, 30)
    samplers = [
        FrequencySampler(
            labels, frequency_sampling=True, seed=9, num_replicas=num_replicas, rank=rank
        )
        for rank in range(num_replicas)
    ]
    single = FrequencySampler(labels, frequency_sampling=True, seed=9)
    for epoch in range(3):
        single.set_epoch(epoch)
        shares = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            shares.append(list(sampler))
        share_len = -(-20 // num_replicas)
        assert all(len(share) == len(sampler) == share_len for share in shares)
        everything = [i for share in shares for i in share]
        assert len(everything) == share_len * num_replicas
        assert set(everything) == set(single.epoch_plan())
        assert len(everything) - len(set(everything)) == share_len * num_replicas - 20
        for sampler in samplers:
            np.testing.assert_array_equal(sampler.use_counts, single.use_counts)


@pytest.mark.parametrize(
    ("labels", "num_replicas", "rank"),
    [([False, False], 1, 0), ([True, False], 0, 0), ([True, False], 2, 2)],
)
def test_bad_arguments_are_refused(labels: list[bool], num_replicas: int, rank: int) -> None:
    """No positives, or a rank outside [0, num_replicas), is refused."""
    with pytest.raises(ValueError):
        FrequencySampler(
            labels, frequency_sampling=True, seed=0, num_replicas=num_replicas, rank=rank
        )


def test_works_as_a_dataloader_sampler() -> None:
    """A DataLoader draws the planned indices through the sampler."""
    labels = _labels(4, 10)
    dataset = torch.utils.data.TensorDataset(torch.arange(len(labels)))
    sampler = FrequencySampler(labels, frequency_sampling=True, seed=0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=3, sampler=sampler)
    sampler.set_epoch(0)
    drawn = torch.cat([batch for (batch,) in loader]).tolist()
    assert drawn == sampler.epoch_plan().tolist()
