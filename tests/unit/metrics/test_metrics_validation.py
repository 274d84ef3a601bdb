"""Input checking of the pixel-level metrics, and torch inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crackkit.metrics import count_stats, dice_iou_sweep, ods_ois, tolerance_sweep

SWEEPS = [count_stats, tolerance_sweep, dice_iou_sweep, ods_ois]


def valid_case(n: int = 3, h: int = 6, w: int = 8):
    """Small probs / masks pair with a crack in every image."""
    rng = np.random.default_rng(0)
    probs = rng.random((n, h, w))
    masks = np.zeros((n, h, w), dtype=bool)
    masks[:, 2, 1:6] = True
    return probs, masks


def _with(value_at, array):
    out = np.array(array, dtype=np.float64)
    out[0, 0, 0] = value_at
    return out


PROBS, MASKS = valid_case()
BAD_INPUTS = [
    (PROBS[0], MASKS[0], "probs must be 3-D"),
    (PROBS, MASKS[None], "masks must be 3-D"),
    (PROBS, MASKS[:, :, :7], "masks shape .* does not match probs shape"),
    (_with(np.nan, PROBS), MASKS, "probs contains NaN"),
    (_with(np.inf, PROBS), MASKS, "probs contains infinite"),
    (_with(1.2, PROBS), MASKS, r"probs must lie in \[0, 1\]; found .*1\.2"),
    (_with(-0.1, PROBS), MASKS, r"probs must lie in \[0, 1\]"),
    (PROBS, _with(0.5, MASKS), "masks must be binary.*0.5"),
    (PROBS, _with(np.nan, MASKS), "masks must be binary"),
    (PROBS, MASKS.astype(np.int64) * 2, "masks must be binary.*2"),
    (PROBS, np.zeros_like(MASKS), "no crack-containing image"),
    (PROBS.astype(np.complex128), MASKS, "probs must hold real numbers"),
]


@pytest.mark.parametrize("fn", SWEEPS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("probs", "masks", "match"), BAD_INPUTS)
def test_bad_maps_raise(fn, probs, masks, match):
    """Malformed maps raise a ValueError naming the argument and the finding."""
    if fn is count_stats and match == "no crack-containing image":
        assert count_stats(probs, masks).gt_pos.sum() == 0
        return
    with pytest.raises(ValueError, match=match):
        fn(probs, masks)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tolerance": -1}, "tolerance must be a non-negative integer"),
        ({"tolerance": 1.5}, "tolerance must be a non-negative integer"),
        ({"tolerance": True}, "tolerance must be a non-negative integer"),
        ({"thresholds": []}, "thresholds is empty"),
        ({"thresholds": [0.5, 0.5]}, "thresholds must be strictly increasing"),
        ({"thresholds": [0.6, 0.2]}, "thresholds must be strictly increasing"),
        ({"thresholds": [0.2, np.nan]}, "thresholds must be finite"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    """Bad tolerance or threshold grids raise a ValueError naming the parameter."""
    with pytest.raises(ValueError, match=match):
        tolerance_sweep(PROBS, MASKS, **kwargs)


@pytest.mark.parametrize("fn", SWEEPS[1:], ids=lambda f: f.__name__)
def test_torch_inputs_match_numpy(fn):
    """Torch tensors (even with grad) give exactly the numpy result."""
    probs, masks = valid_case()
    ref = fn(probs, masks)
    got = fn(torch.tensor(probs, requires_grad=True), torch.tensor(masks))
    ref_dict = ref if isinstance(ref, dict) else ref.to_dict()
    got_dict = got if isinstance(got, dict) else got.to_dict()
    assert got_dict == ref_dict


def test_torch_low_precision_matches_its_float_values():
    """A bfloat16 / float16 tensor is evaluated on its exact stored values."""
    probs, masks = valid_case()
    for dtype in (torch.bfloat16, torch.float16):
        tensor = torch.tensor(probs).to(dtype)
        got = tolerance_sweep(tensor, torch.tensor(masks))
        ref = tolerance_sweep(tensor.float().numpy().astype(np.float64), masks)
        assert np.array_equal(got.f1, ref.f1)


def test_non_contiguous_input():
    """A transposed (non-contiguous) view gives the same counts as a contiguous copy."""
    probs, masks = valid_case(h=8, w=8)
    view_p, view_m = probs.transpose(0, 2, 1), masks.transpose(0, 2, 1)
    got = count_stats(view_p, view_m)
    ref = count_stats(np.ascontiguousarray(view_p), np.ascontiguousarray(view_m))
    assert np.array_equal(got.tp, ref.tp) and np.array_equal(got.fn, ref.fn)


def test_integer_probs_are_allowed():
    """Binary integer prediction maps are valid probabilities."""
    _, masks = valid_case()
    sweep = tolerance_sweep(masks.astype(np.uint8), masks, 0)
    assert sweep.best_f1 == 1.0
