"""The published decoder's crop, counted by hand: which output rows miss transposed-conv taps.

A 5x5 transposed convolution with stride 2 and no padding turns h rows into 2h + 3; the original
code (and crackkit's ``_fit_to``) crops 2 rows at the top and 1 at the bottom. Output row j (after
the crop) collects the taps k of input rows i with 2i + k = j + 2: three for even j, two for odd
j, fewer where i leaves [0, h). By hand, for h = 4: rows 0..7 get 2, 2, 3, 2, 3, 2, 2, 1 taps:
the first row misses one of three, the last one of two and the one above it one of three.
docs/networks.md ("The bottom-border band") uses these counts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from crackkit.model import _fit_to

HAND_COUNTED = [2, 2, 3, 2, 3, 2, 2, 1]


def test_crop_leaves_the_last_row_one_tap_of_two():
    ones = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    kernel = torch.ones(1, 1, 5, 1, dtype=torch.float64)  # rows only: count row taps
    out = F.conv_transpose2d(ones, kernel, stride=(2, 1))
    assert out.shape[-2] == 2 * 4 + 3
    fitted = _fit_to(out, (8, 4))
    assert fitted[0, 0, :, 0].tolist() == HAND_COUNTED


def test_columns_are_cropped_the_same_way():
    ones = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    kernel = torch.ones(1, 1, 1, 5, dtype=torch.float64)
    fitted = _fit_to(F.conv_transpose2d(ones, kernel, stride=(1, 2)), (4, 8))
    assert fitted[0, 0, 0, :].tolist() == HAND_COUNTED
