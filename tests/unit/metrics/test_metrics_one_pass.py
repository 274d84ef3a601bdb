"""segmentation_metrics: one counting pass equals the separately computed views."""

from __future__ import annotations

import numpy as np
import pytest

from crackkit import metrics as M


@pytest.mark.parametrize("tolerance", [0, 1, 2])
def test_one_pass_equals_separate_views(tolerance):
    """Every view derived from one pass equals its stand-alone function exactly."""
    rng = np.random.default_rng(tolerance)
    masks = rng.random((6, 19, 27)) > 0.93
    masks[2] = False
    probs = np.clip(masks * 0.6 + rng.random(masks.shape) * 0.5, 0, 1)
    views = M.segmentation_metrics(probs, masks, tolerance=tolerance)
    sweep = M.tolerance_sweep(probs, masks, tolerance=tolerance)
    plain = M.tolerance_sweep(probs, masks, tolerance=0)
    for got, want in [(views["tolerance"], sweep), (views["pixel"], plain)]:
        for field in ("precision", "recall", "f1"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
        assert got.to_dict() == want.to_dict()
    assert views["dice_iou"].to_dict() == M.dice_iou_sweep(probs, masks).to_dict()
    assert views["ods_ois"] == M.ods_ois(probs, masks, tolerance=tolerance)


def test_one_pass_of_a_list_equals_the_array():
    """Maps given as a list of equal-sized (H, W) arrays give the array's views exactly."""
    rng = np.random.default_rng(9)
    masks = rng.random((4, 13, 17)) > 0.9
    probs = np.clip(masks * 0.5 + rng.random(masks.shape) * 0.6, 0, 1)
    a = M.segmentation_metrics(probs, masks)
    b = M.segmentation_metrics(list(probs), list(masks))
    assert a["tolerance"].to_dict() == b["tolerance"].to_dict()
    assert a["dice_iou"].to_dict() == b["dice_iou"].to_dict()
    assert a["ods_ois"] == b["ods_ois"]
