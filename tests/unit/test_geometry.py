"""Crack geometry on drawn shapes whose length, width and area are known by construction.

Every shape is drawn here with numpy or :mod:`skimage.draw`, never with the code under test. A
band ``w`` px wide and ``L`` px long is the set of pixels whose centres lie in the rectangle
(edge to edge, ``L x w``), so its true length is ``L`` and its true width ``w`` (module
docstring of :mod:`crackkit.geometry`: lengths and widths are measured edge to edge).
"""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest
from skimage.draw import line, polygon

from crackkit.geometry import GEOMETRY_COLUMNS, _steps, measure, rows, skeleton_widths

# --- drawing (the oracles) -------------------------------------------------------------------


def band(length: int, width: int, *, vertical: bool = False, pad: int = 20) -> np.ndarray:
    """An axis-aligned band ``length`` px long and ``width`` px wide, ``pad`` px from the edges."""
    mask = np.zeros((width + 2 * pad, length + 2 * pad), bool)
    mask[pad : pad + width, pad : pad + length] = True
    return mask.T.copy() if vertical else mask


def rotated_band(length: float, width: float, degrees: float, size: int = 320) -> np.ndarray:
    """A ``length x width`` rectangle turned by ``degrees``, rasterised by skimage.draw.polygon.

    The corners are placed in pixel-edge coordinates and shifted by half a pixel into the pixel
    centre coordinates that ``polygon`` uses, so the pixel count is ``length * width`` up to the
    rasterisation of the boundary. The centre is off the pixel grid to avoid a symmetric case.
    """
    t = math.radians(degrees)
    along = np.array([math.sin(t), math.cos(t)])  # (row, col)
    across = np.array([math.cos(t), -math.sin(t)])
    centre = np.array([size / 2 + 0.123, size / 2 + 0.271])
    corners = np.array(
        [
            centre + sa * along * length / 2 + sc * across * width / 2
            for sa, sc in ((-1, -1), (1, -1), (1, 1), (-1, 1))
        ]
    )
    mask = np.zeros((size, size), bool)
    rr, cc = polygon(corners[:, 0] - 0.5, corners[:, 1] - 0.5, mask.shape)
    mask[rr, cc] = True
    return mask


def quarter_arc(radius: float, width: float) -> np.ndarray:
    """Pixels whose centres are within ``width / 2`` of a circle, at angles 0 to 90 degrees.

    ``|r - R| < w / 2``, the arc's own band ``w`` px wide. (``|r - R| <= 2`` would be 5 pixels
    across only where the arc runs along a pixel axis: its area is 639 px over 157 px of arc, a
    band 4.07 px wide in area terms, the same as ``|r - R| < 2``.)
    """
    size = int(radius + width + 20)
    rr, cc = np.mgrid[0:size, 0:size].astype(float) - 10  # centre at pixel (10, 10)
    r = np.hypot(rr, cc)
    angle = np.degrees(np.arctan2(rr, cc))
    return (np.abs(r - radius) < width / 2) & (angle >= 0) & (angle <= 90)


def ring(radius: float, width: float) -> np.ndarray:
    size = int(2 * (radius + width) + 10)
    rr, cc = np.mgrid[0:size, 0:size].astype(float)
    return np.abs(np.hypot(rr - size / 2, cc - size / 2) - radius) < width / 2


def only(mask: np.ndarray) -> dict:
    cracks = measure(mask)
    assert len(cracks) == 1
    return cracks[0]


def rel(measured: float, true: float) -> float:
    return abs(measured / true - 1)


# --- length and width on drawn cases ---------------------------------------------------------


@pytest.mark.parametrize("vertical", [False, True])
def test_straight_band_200_by_5(vertical):
    mask = band(200, 5, vertical=vertical)
    c = only(mask)
    assert rel(c["length_px"], 200) <= 0.02
    assert abs(c["mean_width_px"] - 5) <= 0.5
    assert abs(c["max_width_px"] - 5) <= 0.5
    assert c["area_px"] == 1000
    assert c["bbox"] == ((20, 20, 220, 25) if vertical else (20, 20, 25, 220))
    assert all(type(b) is int for b in c["bbox"])


@pytest.mark.parametrize("width", [3, 9])
def test_widths_3_and_9(width):
    for mask in (band(200, width), rotated_band(200, width, 30)):
        c = only(mask)
        assert abs(c["mean_width_px"] - width) <= 0.5
        assert abs(c["max_width_px"] - width) <= 0.5
        assert rel(c["length_px"], 200) <= 0.03


@pytest.mark.parametrize("degrees", [22.5, 30, 45, 60])
def test_slanted_band_length(degrees):
    # 22.5 degrees is where counting 1 and sqrt(2) per step would read 8 % long.
    c = only(rotated_band(200, 5, degrees))
    assert rel(c["length_px"], 200) <= 0.03
    assert abs(c["mean_width_px"] - 5) <= 0.5


def test_line_thickened_by_a_disk():
    # skimage.draw.line from (20, 20) to (200, 260), then every pixel within 2 px of it (the
    # 13-pixel disk of radius 2): a stadium whose end-to-end length is the line's plus a 2.5-px
    # cap at each end. Off the axes that disk makes a band narrower than 5 px (5 pixels across
    # only along a row or column), so the width oracle is the drawn area over the known length.
    mask = np.zeros((260, 300), bool)
    rr, cc = line(20, 20, 200, 260)
    mask[rr, cc] = True
    offsets = [(dr, dc) for dr in range(-2, 3) for dc in range(-2, 3) if dr * dr + dc * dc <= 4]
    thick = np.zeros_like(mask)
    for dr, dc in offsets:
        thick |= np.roll(mask, (dr, dc), axis=(0, 1))
    true_length = math.hypot(180, 240) + 5
    c = only(thick)
    assert rel(c["length_px"], true_length) <= 0.03
    assert abs(c["mean_width_px"] - thick.sum() / true_length) <= 0.5


def test_quarter_circle_arc():
    c = only(quarter_arc(100, 5))
    assert rel(c["length_px"], math.pi / 2 * 100) <= 0.03
    assert abs(c["mean_width_px"] - 5) <= 0.5
    assert abs(c["max_width_px"] - 5) <= 0.5


def test_closed_ring_has_its_circumference():
    c = only(ring(30, 5))
    assert rel(c["length_px"], 2 * math.pi * 30) <= 0.03
    assert abs(c["mean_width_px"] - 5) <= 0.5


def test_one_pixel_diagonal_is_the_step_rule_exactly():
    # 100 pixels on the diagonal: 99 diagonal steps of sqrt(2), plus half a pixel at each end.
    mask = np.zeros((110, 110), bool)
    idx = np.arange(5, 105)
    mask[idx, idx] = True
    c = only(mask)
    assert c["length_px"] == pytest.approx(99 * math.sqrt(2) + 1, abs=1e-9)
    assert c["area_px"] == 100


def test_t_junction_counts_each_branch_to_the_centre():
    mask = np.zeros((200, 260), bool)
    mask[30:35, 30:230] = True  # bar: 200 x 5
    mask[35:135, 128:133] = True  # stem: 100 px below the bar
    c = only(mask)
    assert rel(c["length_px"], 200 + 100 + 2.5) <= 0.02


def test_steps_drop_triangles_and_blocks_but_keep_loops():
    def counted(pixels, shape=(8, 8)):
        sk = np.zeros(shape, bool)
        for r, col in pixels:
            sk[r, col] = True
        rr, cc = np.nonzero(sk)
        index = np.full(shape, -1, np.int64)
        index[rr, cc] = np.arange(rr.size)
        _, _, v, _ = _steps(sk, rr, cc, index)
        return sorted(float(np.hypot(*s)) for s in v)

    axial, diag = 1.0, math.sqrt(2)
    assert counted([(2, 2), (2, 3), (3, 3)]) == [axial, axial]  # L with its diagonal shortcut
    assert counted([(2, 2), (2, 3), (3, 2), (3, 3)]) == [axial] * 3  # 2x2 block: a spanning tree
    diamond = [(2, 3), (3, 2), (3, 4), (4, 3)]  # a ring of 4 diagonal steps around (3, 3)
    assert counted(diamond) == [pytest.approx(diag)] * 4


# --- several cracks, empty and tiny masks ----------------------------------------------------


def test_two_cracks_two_rows_longest_first():
    mask = np.zeros((120, 300), bool)
    mask[10:15, 20:100] = True  # 80 long, first in raster order
    mask[60:63, 40:190] = True  # 150 long
    cracks = measure(mask)
    assert [c["id"] for c in cracks] == [1, 2]
    assert [c["bbox"] for c in cracks] == [(60, 40, 63, 190), (10, 20, 15, 100)]
    assert rel(cracks[0]["length_px"], 150) <= 0.02
    assert rel(cracks[1]["length_px"], 80) <= 0.02
    assert [c["area_px"] for c in cracks] == [450, 400]


def test_diagonal_touch_joins_two_pieces():
    mask = np.zeros((10, 10), bool)
    mask[2, 2] = mask[3, 3] = True  # 8-connected: one crack
    assert len(measure(mask)) == 1


def test_empty_mask():
    assert measure(np.zeros((32, 32), bool)) == []
    assert measure(np.zeros((0, 7), bool)) == []


def test_single_pixel():
    mask = np.zeros((9, 9), bool)
    mask[4, 5] = True
    (c,) = measure(mask)
    assert c["area_px"] == 1
    assert c["bbox"] == (4, 5, 5, 6)
    assert c["length_px"] == pytest.approx(1.0)
    assert c["mean_width_px"] == pytest.approx(1.0)
    assert c["max_width_px"] == pytest.approx(1.0)


def test_crack_leaving_the_image_is_measured_to_the_edge():
    mask = np.zeros((30, 300), bool)
    mask[10:15, :200] = True
    assert rel(only(mask)["length_px"], 200) <= 0.02


def test_integer_and_float_masks_are_accepted():
    mask = band(60, 3)
    expected = measure(mask)
    assert measure(mask.astype(np.uint8)) == expected
    assert measure(mask.astype(np.float32)) == expected
    assert measure(mask.tolist()) == expected


# --- millimetres -----------------------------------------------------------------------------


def test_mm_scaling():
    mask = rotated_band(120, 5, 30)
    s = 0.25
    (px,) = measure(mask)
    (mm,) = measure(mask, mm_per_px=s)
    for key in ("id", "length_px", "mean_width_px", "max_width_px", "area_px", "bbox"):
        assert mm[key] == px[key]
    assert mm["length_mm"] == pytest.approx(px["length_px"] * s)
    assert mm["mean_width_mm"] == pytest.approx(px["mean_width_px"] * s)
    assert mm["max_width_mm"] == pytest.approx(px["max_width_px"] * s)
    assert mm["area_mm2"] == pytest.approx(px["area_px"] * s * s)
    for key in ("length_mm", "mean_width_mm", "max_width_mm", "area_mm2"):
        assert px[key] is None  # present, and None, without a scale
    assert list(px) == list(mm)


# --- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "names"),
    [
        (np.zeros((2, 3, 4), bool), "(2, 3, 4)"),
        (np.zeros(5, bool), "(5,)"),
        (np.zeros((4, 4), dtype="<U1"), "<U1"),
        (np.zeros((4, 4), complex), "complex"),
        (np.full((4, 4), 0.5), "0.5"),
        (np.full((4, 4), np.nan), "nan"),
        (np.full((4, 4), 255, np.uint8), "255"),
    ],
)
def test_bad_masks_raise(mask, names):
    with pytest.raises(ValueError, match="mask") as info:
        measure(mask)
    assert names in str(info.value)
    with pytest.raises(ValueError):
        skeleton_widths(mask)


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), float("inf"), True, "0.1"])
def test_bad_scales_raise(scale):
    with pytest.raises(ValueError, match="mm_per_px"):
        measure(band(20, 3), mm_per_px=scale)


def test_integer_scale_is_accepted():
    (c,) = measure(band(20, 3), mm_per_px=2)
    assert c["area_mm2"] == pytest.approx(60 * 4)


# --- overlay and CSV -------------------------------------------------------------------------


def test_skeleton_widths_for_an_overlay():
    mask = np.zeros((80, 300), bool)
    mask[10:15, 20:220] = True
    mask[40:49, 30:250] = True
    skeleton, width = skeleton_widths(mask)
    assert skeleton.shape == width.shape == mask.shape
    assert skeleton.dtype == bool and width.dtype == np.float32
    assert skeleton.any() and not (skeleton & ~mask).any()
    assert (width[~skeleton] == 0).all() and (width[skeleton] > 0).all()
    top, bottom = skeleton.copy(), skeleton.copy()
    top[30:], bottom[:30] = False, False
    assert np.median(width[top]) == pytest.approx(5, abs=0.5)
    assert np.median(width[bottom]) == pytest.approx(9, abs=0.5)
    empty_skeleton, empty_width = skeleton_widths(np.zeros((6, 7), bool))
    assert not empty_skeleton.any() and not empty_width.any() and empty_width.shape == (6, 7)


def test_geometry_columns():
    assert GEOMETRY_COLUMNS == (
        "id",
        "length_px",
        "mean_width_px",
        "max_width_px",
        "area_px",
        "bbox_r0",
        "bbox_c0",
        "bbox_r1",
        "bbox_c1",
        "length_mm",
        "mean_width_mm",
        "max_width_mm",
        "area_mm2",
    )


def test_rows_flatten_for_csv():
    mask = np.zeros((120, 300), bool)
    mask[10:15, 20:100] = True
    mask[60:63, 40:190] = True
    for scale in (None, 0.5):
        cracks = measure(mask, mm_per_px=scale)
        table = rows(cracks, "img_001.png")
        assert [list(r) for r in table] == [["image", *GEOMETRY_COLUMNS]] * 2
        first = table[0]
        assert first["image"] == "img_001.png"
        assert (first["bbox_r0"], first["bbox_c0"], first["bbox_r1"], first["bbox_c1"]) == (
            cracks[0]["bbox"]
        )
        assert first["length_px"] == cracks[0]["length_px"]
        assert first["length_mm"] == cracks[0]["length_mm"]
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=["image", *GEOMETRY_COLUMNS])
        writer.writeheader()
        writer.writerows(table)
        lines = out.getvalue().splitlines()
        assert lines[0] == ",".join(["image", *GEOMETRY_COLUMNS])
        assert len(lines) == 3
        if scale is None:
            assert lines[1].endswith(",,,,")  # the four mm cells are empty
    assert rows([], "x.png") == []
    no_mm = {k: v for k, v in measure(mask)[0].items() if not k.endswith(("_mm", "_mm2"))}
    assert rows([no_mm], "x.png")[0]["area_mm2"] is None
