"""Tests for crackkit.data.weights: distance-weighted loss maps and mask dilation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from crackkit.data.weights import dilate_mask, distance_weights


def _bar(height: int = 32, width: int = 48, rows: slice = slice(10, 17)) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[rows, 5:43] = True
    return mask


@pytest.mark.parametrize(("p", "max_weight"), [(0.0, 1.0), (1.0, 3.0), (2.0, 0.5)])
def test_background_weight_is_exactly_one(p: float, max_weight: float) -> None:
    """Every background pixel weighs exactly 1."""
    weights = distance_weights(_bar(), p, max_weight)
    assert weights.dtype == np.float32 and weights.shape == (32, 48)
    assert np.all(weights[~_bar()] == 1.0)


@pytest.mark.parametrize(("p", "max_weight"), [(1.0, 1.0), (2.0, 3.0)])
def test_seven_pixel_bar_grows_symmetrically_to_its_centre(p: float, max_weight: float) -> None:
    """Across a 7-px bar the weights are max·((1,2,3,4,3,2,1)/4)^p."""
    column = distance_weights(_bar(), p, max_weight)[10:17, 24]
    expected = max_weight * (np.array([1, 2, 3, 4, 3, 2, 1]) / 4) ** p
    np.testing.assert_allclose(column, expected, rtol=1e-6)
    np.testing.assert_array_equal(column, column[::-1])
    assert np.all(np.diff(column[:4]) > 0)
    assert column[3] == pytest.approx(max_weight)


def test_components_are_normalised_independently() -> None:
    """scope='component' (the forks'): a 1-px crack and a 7-px crack both reach max_weight, and
    the thick one is unchanged."""
    thick = _bar()
    both = thick.copy()
    both[25, 2:46] = True
    weights = distance_weights(both, 2.0, 3.0, scope="component")
    np.testing.assert_allclose(weights[25, 2:46], 3.0)
    assert weights[thick].max() == pytest.approx(3.0)
    np.testing.assert_array_equal(
        weights[thick], distance_weights(thick, 2.0, 3.0, scope="component")[thick]
    )


def test_the_published_d_max_is_one_over_the_whole_mask() -> None:
    """scope='mask' (upstream distance_transform): beside the 7-px crack (d_max 4) the hairline
    weighs 3 * (1/4)^2 = 0.1875, where alone it weighs 3."""
    thick = _bar()
    both = thick.copy()
    both[25, 2:46] = True
    weights = distance_weights(both, 2.0, 3.0)
    np.testing.assert_allclose(weights[25, 2:46], 0.1875, rtol=1e-6)
    np.testing.assert_allclose(weights[thick], distance_weights(thick, 2.0, 3.0)[thick])
    alone = np.zeros_like(thick)
    alone[25, 2:46] = True
    np.testing.assert_allclose(distance_weights(alone, 2.0, 3.0)[25, 2:46], 3.0)


def test_diagonal_neighbours_share_a_component() -> None:
    """Components are 8-connected: a pixel touching a blob's corner is normalised with the blob."""
    mask = np.zeros((16, 16), dtype=bool)
    mask[4:7, 4:7] = True
    mask[7, 7] = True
    weights = distance_weights(mask, 1.0, 1.0, scope="component")
    assert weights[5, 5] == pytest.approx(1.0)
    assert weights[7, 7] == pytest.approx(0.5)


@pytest.mark.parametrize("max_weight", [0.5, 1.0, 4.0])
def test_p_zero_gives_max_weight_on_every_crack_pixel(max_weight: float) -> None:
    """With p = 0 every positive pixel weighs max_weight."""
    weights = distance_weights(_bar(), 0.0, max_weight)
    np.testing.assert_array_equal(weights[_bar()], np.float32(max_weight))


@pytest.mark.parametrize(("fill", "expected"), [(False, 1.0), (True, 2.0)])
def test_uniform_masks(fill: bool, expected: float) -> None:
    """An empty mask weighs 1 everywhere; an all-crack mask max_weight everywhere."""
    weights = distance_weights(np.full((8, 8), fill), 2.0, 2.0)
    np.testing.assert_array_equal(weights, np.full((8, 8), expected, dtype=np.float32))


@pytest.mark.parametrize(("shape", "p", "max_weight"), [((2, 8, 8), 1.0, 1.0), ((8, 8), -1.0, 1.0)])
def test_distance_weights_refuses_bad_arguments(
    shape: tuple[int, ...], p: float, max_weight: float
) -> None:
    """A non-2-D mask or a negative exponent is refused."""
    with pytest.raises(ValueError):
        distance_weights(np.zeros(shape, dtype=bool), p, max_weight)


@pytest.mark.parametrize("kernel", [-1, 0, 1])
def test_small_kernels_leave_the_mask_unchanged(kernel: int) -> None:
    """kernel <= 1 returns an equal copy."""
    mask = _bar()
    out = dilate_mask(mask, kernel)
    assert out is not mask
    np.testing.assert_array_equal(out, mask)


@pytest.mark.parametrize(
    ("kernel", "rows", "cols"),
    [(3, slice(2, 5), slice(3, 6)), (2, slice(3, 5), slice(4, 6)), (4, slice(2, 6), slice(3, 7))],
)
def test_dilating_one_pixel_gives_the_anchored_square(
    kernel: int, rows: slice, cols: slice
) -> None:
    """A single pixel at (3, 4) becomes a kernel-sized square anchored at kernel // 2."""
    mask = np.zeros((8, 9), dtype=bool)
    mask[3, 4] = True
    expected = np.zeros_like(mask)
    expected[rows, cols] = True
    out = dilate_mask(mask, kernel)
    assert out.dtype == bool
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("kernel", [3, 5, 7])
def test_odd_kernels_match_scipy_binary_dilation(kernel: int) -> None:
    """Odd kernels agree with scipy's binary dilation by a square, borders included."""
    rng = np.random.default_rng(kernel)
    mask = rng.random((32, 48)) > 0.97
    mask[0, 0] = mask[-1, -1] = True
    expected = ndimage.binary_dilation(mask, structure=np.ones((kernel, kernel), dtype=bool))
    np.testing.assert_array_equal(dilate_mask(mask, kernel), expected)
