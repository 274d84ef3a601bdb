"""Tiled prediction, test-time flips, rescaling, EXIF orientation and crack geometry of
crackkit.predict and crackkit.apply, on stub networks whose output is known and on tiny real
ones."""

from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps
from torch import nn

from crackkit.apply import (
    CSV_COLUMNS,
    GEOMETRY_CSV_COLUMNS,
    plot_width_histogram,
    predict_folder,
)
from crackkit.checkpoint import save_checkpoint
from crackkit.cli import main
from crackkit.config import ConfigError, make_config
from crackkit.geometry import measure, rows
from crackkit.model import FeatureNorm, build_model
from crackkit.predict import Predictor
from crackkit.runtime import Placement
from crackkit.specs import CHECKPOINT_FORMAT
from crackkit.tiling import DEFAULT_TILE_MODE, WINDOW_FLOOR, blend_window, tile_plan

EPS = 1e-6
CPU = Placement(torch.device("cpu"), None, False)


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(EPS, 1 - EPS)
    return torch.log(p) - torch.log1p(-p)


class RedStub(nn.Module):
    """Crack probability = red / 255 at every pixel; decision logit = the window's mean logit."""

    output_stride = 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seg = _logit(x[:, :1])
        return seg.mean(dim=(2, 3)), seg


class ShiftStub(nn.Module):
    """Not flip-equivariant: probability = red of the pixel to the right (the last column
    repeated); decision logit = 4 * (mean red of the left half - mean red of the right half)."""

    output_stride = 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = x[:, :1]
        shifted = torch.cat([r[..., 1:], r[..., -1:]], dim=-1)
        half = r.shape[-1] // 2
        dec = 4 * (r[..., :half].mean(dim=(2, 3)) - r[..., half:].mean(dim=(2, 3)))
        return dec, _logit(shifted)


class NormStub(nn.Module):
    """A pixel-wise map ending in FeatureNorm(1), where SegDecNet++ keeps it
    (``decoder.out[-1]``): logits = FeatureNorm over the input of 3 * red - 1."""

    output_stride = 1

    def __init__(self) -> None:
        super().__init__()
        self.decoder = nn.Module()
        self.decoder.out = nn.Sequential(FeatureNorm(1))
        with torch.no_grad():
            self.decoder.out[0].scale.fill_(0.7)
            self.decoder.out[0].bias.fill_(-0.3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seg = self.decoder.out(3 * x[:, :1] - 1)
        return seg.mean(dim=(2, 3)), seg


def _stub(model: nn.Module | None = None, **options) -> Predictor:
    """A predictor around a stub, run configuration of the tiny preset (input 64x128)."""
    cfg = make_config({"input_channels": 3}, preset="tiny")
    return Predictor((model or RedStub()).eval(), cfg, CPU, progress=False, **options)


def _red(image: np.ndarray) -> np.ndarray:
    return np.clip(image[..., 0].astype(np.float64) / 255.0, EPS, 1 - EPS)


def _random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _hand_made_checkpoint(path: Path) -> Path:
    """A never-validated segdecnet checkpoint (random weights) of the tiny preset, 64x128."""
    cfg = make_config({"architecture": "segdecnet", "amp": "off"}, preset="tiny")
    torch.manual_seed(0)
    model = build_model("segdecnet", 3, cfg.input_height, cfg.input_width)
    state = {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "config": cfg.to_dict(),
        "epoch": 0,
        "best": {"score": -math.inf, "epoch": None, "metrics": None},
    }
    return save_checkpoint(path, state)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return _hand_made_checkpoint(tmp_path_factory.mktemp("ckpt") / "segdecnet.pt")


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


# --- the grid and the window ---------------------------------------------------------------


@pytest.mark.parametrize("size", [(150, 230), (64, 129), (300, 100), (65, 500), (40, 700)])
@pytest.mark.parametrize(("overlap", "margin"), [((16, 32), (0, 0)), ((16, 32), (4, 8)), (8, 4)])
def test_tile_grid_covers_the_image_last_window_at_the_far_edge(size, overlap, margin):
    """Windows start at the near edge every side - overlap px, the last one flush with the far
    edge, no window more than needed, and the kept parts cover every image pixel."""
    h, w = size
    plan = tile_plan(h, w, (64, 128), overlap, margin)
    (top, bottom), (left, right) = plan.pads
    ph, pw = plan.padded_size
    assert (ph, pw) == (h + top + bottom, w + left + right)
    for starts, side, over, pad, padded in (
        (plan.rows, 64, plan.overlap[0], (top, bottom), ph),
        (plan.cols, 128, plan.overlap[1], (left, right), pw),
    ):
        assert starts[0] == 0 and starts[-1] == padded - side
        assert all(0 < b - a <= side - over for a, b in zip(starts, starts[1:], strict=False))
        if len(starts) > 1:
            assert starts[-2] < padded - side  # no spare window
        assert min(pad) >= 0
    covered = np.zeros((ph, pw), int)
    total = np.zeros((ph, pw))
    (mh, mw), weight = plan.margin, plan.weight()
    for r, c in plan.windows:
        covered[r + mh : r + 64 - mh, c + mw : c + 128 - mw] += 1
        total[r : r + 64, c : c + 128] += weight
    assert covered[top : top + h, left : left + w].min() >= 1
    assert total[top : top + h, left : left + w].min() >= 0.999 * WINDOW_FLOOR**2  # float32
    assert len(plan) == len(plan.rows) * len(plan.cols) == len(plan.windows)


def test_blend_window_is_a_floored_hann_over_the_kept_part():
    """sin^2(pi (k + 1/2) / n) over the kept n px, floored; zero on the dropped margins."""
    w = blend_window(40, 5)
    assert np.all(w[:5] == 0) and np.all(w[-5:] == 0)
    k = np.arange(30)
    np.testing.assert_allclose(w[5:35], np.maximum(np.sin(np.pi * (k + 0.5) / 30) ** 2, 1e-3))
    assert w[5:35].min() >= WINDOW_FLOOR
    np.testing.assert_allclose(w[5:35], w[5:35][::-1])


def test_defaults_are_the_runs_input_size_a_quarter_overlap_and_the_context_mode():
    """tile 'auto' is cfg.input_height x cfg.input_width; overlap a quarter of each side; the
    context a quarter of the overlap."""
    p = _stub(NormStub())
    assert p.tile == (64, 128) and p.overlap == (16, 32) and p.tile_mode == DEFAULT_TILE_MODE
    assert p.context == ((4, 8) if DEFAULT_TILE_MODE == "context" else (0, 0))
    assert _stub(tile_mode="context").context == (4, 8)
    assert _stub(tile_mode="plain").context == (0, 0)
    assert _stub(tile=None).plan(1000, 1000) is None
    assert p.plan(64, 128) is None and p.options()["tile"] == [64, 128] and p.tile_auto
    # "auto" runs images of up to 4 tiles' area whole; an explicit tile tiles all larger ones
    assert p.plan(128, 256) is None and p.plan(129, 256) is not None
    assert p.plan(64, 512) is None and p.plan(64, 520) is not None
    explicit = _stub(tile=(64, 128))
    assert not explicit.tile_auto and explicit.plan(65, 128) is not None
    # without a final FeatureNorm to reach (a stub here, an ONNX graph in use) the default
    # "global" mode falls back to "plain"; asking for it is refused
    assert DEFAULT_TILE_MODE != "global" or _stub().tile_mode == "plain"
    with pytest.raises(ConfigError, match="tile_mode 'global' needs a SegDecNet"):
        _stub(tile_mode="global")


# --- tiled = whole for a pixel-wise network --------------------------------------------------


@pytest.mark.parametrize(
    ("tile", "overlap", "mode", "context"),
    [
        ((64, 128), None, "plain", None),
        ((64, 128), (32, 60), "context", None),
        ((128, 64), 8, "context", 4),
        ((72, 136), 0, "plain", None),
        ((64, 128), (40, 100), "context", (20, 50)),
    ],
)
def test_tiled_prediction_of_a_pixelwise_network_equals_the_whole(tile, overlap, mode, context):
    """Whatever the tile, overlap and mode, blending gives back red / 255 at every pixel: the
    weights are normalised and every pixel is covered."""
    image = _random_image(150, 230)
    whole, _ = _stub(tile=None).predict_image(image)
    predictor = _stub(tile=tile, overlap=overlap, tile_mode=mode, context=context, batch_size=3)
    assert predictor.plan(150, 230) is not None and predictor.windows(150, 230) > 4
    tiled, _ = predictor.predict_image(image)
    assert tiled.shape == (150, 230) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    np.testing.assert_allclose(tiled, _red(image), atol=1e-5)


@pytest.mark.parametrize("mode", ["plain", "context"])
def test_tiled_decision_is_the_max_over_the_windows(mode):
    """A tiled image's score is the largest of its windows' scores (computed here by hand)."""
    image = _random_image(150, 230, seed=3)
    image[100:, 180:, 0] = 250  # one bright corner: its windows score highest
    predictor = _stub(tile=(64, 128), tile_mode=mode)
    plan = predictor.plan(150, 230)
    _, score = predictor.predict_image(image)
    padded = np.pad(image, (*plan.pads, (0, 0)), mode="reflect")
    logits = np.log(_red(padded)) - np.log1p(-_red(padded))
    scores = [1 / (1 + math.exp(-logits[r : r + 64, c : c + 128].mean())) for r, c in plan.windows]
    assert score == pytest.approx(max(scores), abs=1e-5)
    assert score > min(scores) + 0.05  # the max, not the mean or the first window


@pytest.mark.parametrize(("overlap", "batch_size"), [(None, 8), ((40, 100), 3), (0, 1)])
def test_global_mode_normalises_the_blended_map_over_the_whole_image(overlap, batch_size):
    """With a pixel-wise map ending in FeatureNorm, "global" tiles give the whole image's result
    (the last normalisation over the whole image), while "plain" tiles, normalised per window,
    do not."""
    image = _random_image(128, 256, seed=8)  # a valid input size: whole runs unpadded
    image[:40, :60, 0] = 255  # one bright region: the windows' statistics differ
    whole, whole_score = _stub(NormStub(), tile=None).predict_image(image)
    options = {"tile": (64, 128), "overlap": overlap, "batch_size": batch_size}
    tiled, score = _stub(NormStub(), tile_mode="global", **options).predict_image(image)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    plain, _ = _stub(NormStub(), tile_mode="plain", **options).predict_image(image)
    assert np.abs(plain - whole).max() > 0.05
    # every window's decision logit is the mean of its normalised map, the bias
    assert score == pytest.approx(whole_score, abs=1e-5)


def test_global_mode_reproduces_the_networks_last_layer():
    """On a real SegDecNet++, one window covering the image in "global" mode gives the network's
    own whole-image output: the hook reads the last FeatureNorm's input and the published
    formula, applied over the image, is that layer."""
    torch.manual_seed(0)
    model = build_model("segdecnet++", 3, 64, 128).eval()
    predictor = _stub(model, tile=(64, 128), tile_mode="global")
    image = _random_image(64, 128, seed=9)
    whole, whole_score = _stub(model, tile=None).predict_image(image)
    plan = tile_plan(64, 128, (64, 128), 0)
    assert plan.windows == [(0, 0)] and plan.pads == ((0, 0), (0, 0))
    prob, score = predictor._predict_tiled(image, plan)
    np.testing.assert_allclose(prob, whole, atol=1e-5)
    assert score == pytest.approx(whole_score, abs=1e-6)


def test_images_not_larger_than_the_tile_run_whole_unchanged():
    """With a real network, an image within the tile gives exactly the untiled result; a larger
    one is tiled into a full-size map in [0, 1]."""
    torch.manual_seed(0)
    model = build_model("segdecnet++", 3, 64, 128).eval()
    tiled, untiled = _stub(model, tile=(64, 128)), _stub(model, tile=None)
    small = _random_image(60, 100, seed=1)
    a, sa = tiled.predict_image(small)
    b, sb = untiled.predict_image(small)
    assert np.array_equal(a, b) and sa == sb
    large = _random_image(100, 200, seed=2)
    assert tiled.windows(100, 200) == 4
    prob, score = tiled.predict_image(large)
    assert prob.shape == (100, 200) and np.isfinite(prob).all()
    assert 0.0 <= prob.min() and prob.max() <= 1.0 and 0.0 <= score <= 1.0


# --- test-time augmentation and scale --------------------------------------------------------


@pytest.mark.parametrize("size", [(64, 128), (150, 230)])
def test_tta_of_a_flip_equivariant_network_changes_nothing(size):
    """red / 255 commutes with flips: the average of the three views is the plain prediction,
    whole and tiled."""
    image = _random_image(*size, seed=4)
    plain, score = _stub(tile=(64, 128)).predict_image(image)
    tta, tta_score = _stub(tile=(64, 128), tta=True).predict_image(image)
    np.testing.assert_allclose(tta, plain, atol=1e-5)
    if size == (64, 128):  # whole: every view has the same mean; tiled grids differ when flipped
        assert tta_score == pytest.approx(score, abs=1e-6)


def test_tta_averages_the_flipped_back_maps_and_the_scores():
    """With a network that is not flip-equivariant, TTA is the hand-computed mean of the three
    views, each flipped back, and the mean of their scores."""
    image = _random_image(64, 128, seed=5)  # a valid input size: no padding to account for
    prob, score = _stub(ShiftStub(), tta=True).predict_image(image)

    def f(red: np.ndarray) -> tuple[np.ndarray, float]:
        shifted = np.concatenate([red[:, 1:], red[:, -1:]], axis=1)
        dec = 4 * (red[:, :64].mean() - red[:, 64:].mean())
        return np.clip(shifted, EPS, 1 - EPS), 1 / (1 + math.exp(-dec))

    red = image[..., 0] / 255.0
    same, mirrored, upside_down = f(red), f(red[:, ::-1]), f(red[::-1])
    maps = [same[0], mirrored[0][:, ::-1], upside_down[0][::-1]]
    scores = [same[1], mirrored[1], upside_down[1]]
    np.testing.assert_allclose(prob, np.mean(maps, axis=0), atol=1e-5)
    assert score == pytest.approx(float(np.mean(scores)), abs=1e-6)
    plain, _ = _stub(ShiftStub()).predict_image(image)
    assert np.abs(plain - prob).max() > 0.05  # the views did differ


@pytest.mark.parametrize("scale", [0.5, 2.0, 0.37])
def test_scale_resizes_there_and_back(scale):
    """Maps come back at the image's size; on a smooth image the round trip keeps the values."""
    yy, xx = np.mgrid[0:90, 0:150]
    red = (40 + 150 * (0.5 + 0.5 * np.sin(yy / 15.0) * np.cos(xx / 20.0))).astype(np.uint8)
    image = np.stack([red, red, red], axis=-1)
    prob, score = _stub(scale=scale, tile=None).predict_image(image)
    assert prob.shape == (90, 150) and prob.dtype == np.float32 and 0 <= score <= 1
    inner = (slice(4, -4), slice(4, -4))
    assert np.abs(prob - _red(image))[inner].max() < 0.03
    same, _ = _stub(scale=1.0, tile=None).predict_image(image)
    np.testing.assert_allclose(same, _red(image), atol=1e-5)


# --- folders: EXIF, geometry ----------------------------------------------------------------


def test_exif_rotated_photo_gives_outputs_at_the_displayed_orientation(tmp_path):
    """A photo stored 40x72 with EXIF orientation 6 (rotate 90 degrees) is predicted as
    displayed, 72x40, the pixels as ImageOps.exif_transpose shows them."""
    images = tmp_path / "photos"
    images.mkdir()
    stored = _random_image(40, 72, seed=6)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(images / "turned.png", exif=exif)
    Image.fromarray(stored).save(images / "plain.png")
    with Image.open(images / "turned.png") as img:
        displayed = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    assert displayed.shape == (72, 40, 3)
    report = predict_folder(images, predictor=_stub(tile=None), out_dir=tmp_path / "o")
    plain, turned = report.results
    assert (turned.height, turned.width, turned.orientation) == (72, 40, 6)
    assert (plain.height, plain.width, plain.orientation) == (40, 72, 1)
    prob = _read(turned.prob_path).astype(np.float64) / 255
    assert prob.shape == (72, 40) and _read(turned.overlay_path).shape == (72, 40, 3)
    np.testing.assert_allclose(prob, _red(displayed), atol=0.5 / 255 + 1e-6)
    record = json.loads((report.out_dir / "predict.json").read_text())
    assert record["exif_transposed"] == {"turned.png": 6}


def test_geometry_csv_and_width_overlay_for_a_drawn_crack(tmp_path):
    """A drawn 5-px band becomes the mask; geometry.csv holds geometry.rows of its measure (mm
    at the given pixel size); predictions.csv counts the cracks and their length."""
    images = tmp_path / "drawn"
    images.mkdir()
    band = np.zeros((64, 128, 3), np.uint8)
    band[20:25, 10:110, 0] = 255
    band[40:44, 30:33, 0] = 255  # a small second crack
    Image.fromarray(band).save(images / "band.png")
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(images / "empty.png")
    report = predict_folder(
        images, predictor=_stub(), out_dir=tmp_path / "o", mm_per_px=0.5, progress=False
    )
    mask = band[..., 0] > 127
    expected = rows(measure(mask, 0.5), "band.png")
    with open(report.out_dir / "geometry.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        found = list(reader)
    assert tuple(reader.fieldnames) == GEOMETRY_CSV_COLUMNS
    assert len(found) == len(expected) == 2
    for got, want in zip(found, expected, strict=True):
        for key in GEOMETRY_CSV_COLUMNS:
            if isinstance(want[key], str):
                assert got[key] == want[key]
            else:
                assert float(got[key]) == pytest.approx(want[key], rel=1e-12), key
    assert float(found[0]["length_px"]) == pytest.approx(100, abs=1.5)
    assert float(found[0]["mean_width_mm"]) == pytest.approx(2.5, abs=0.1)
    with open(report.csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        preds = {r["image"]: r for r in reader}
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    assert int(preds["band.png"]["n_cracks"]) == 2 and int(preds["empty.png"]["n_cracks"]) == 0
    assert float(preds["band.png"]["crack_length_px"]) == pytest.approx(
        sum(float(r["length_px"]) for r in found)
    )
    band_result = report.results[0]
    assert band_result.width_path == report.out_dir / "band_width.png"
    assert _read(band_result.width_path).ndim == 3
    assert (report.out_dir / "empty_width.png").is_file()
    assert band_result.widths_px.size > 90
    hist = plot_width_histogram(report, tmp_path / "hist.png")
    assert _read(hist).ndim == 3
    record = json.loads((report.out_dir / "predict.json").read_text())
    assert record["mm_per_px"] == 0.5 and record["geometry"] is True


def test_no_geometry_files_without_geometry(tmp_path):
    """Without geometry or mm_per_px, no geometry.csv and no width overlays."""
    images = tmp_path / "one"
    images.mkdir()
    Image.fromarray(_random_image(30, 40)).save(images / "x.png")
    report = predict_folder(images, predictor=_stub(), out_dir=tmp_path / "o", progress=False)
    assert report.geometry_path is None and report.results[0].width_path is None
    assert sorted(p.name for p in report.out_dir.iterdir()) == [
        "predict.json",
        "predictions.csv",
        "x_mask.png",
        "x_overlay.png",
        "x_prob.png",
    ]


# --- the command line and bad options ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (
            [
                "--tile", "64", "128", "--overlap", "16", "--tile-mode", "plain", "--tta",
                "--scale", "0.5", "--mm-per-px", "0.2",
            ],
            {"tile": [64, 128], "overlap": [16, 16], "tile_mode": "plain", "context": [0, 0],
             "tta": True, "scale": 0.5, "mm_per_px": 0.2, "geometry": True, "tiled_images": 1},
        ),
        (["--no-tile", "--geometry"], {"tile": None, "tta": False, "scale": 1.0,
                                       "mm_per_px": None, "geometry": True, "tiled_images": 0}),
        (["--tile", "0", "0"], {"tile": None, "geometry": False, "tiled_images": 0}),
        ([], {"tile": [64, 128], "tile_mode": DEFAULT_TILE_MODE, "tiled_images": 1}),
    ],
    ids=["tiled-tta-scale-mm", "no-tile", "tile-0-0", "defaults"],
)  # fmt: skip
def test_cli_options_end_to_end(checkpoint, tmp_path, capsys, args, expect):
    """crackkit predict with the tiling, TTA, scale and geometry options records them in
    predict.json and writes every output at the photo's size."""
    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(_random_image(200, 300, seed=7)).save(images / "road.jpg")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(
            ["predict", str(images), "--checkpoint", str(checkpoint), "--out", str(out)]
            + ["--device", "cpu", *args]
        )
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and Path(lines[-1]) == out.resolve()
    record = json.loads((out / "predict.json").read_text())
    for key, value in expect.items():
        assert record[key] == value, key
    assert _read(out / "road_prob.png").shape == (200, 300)
    assert (out / "geometry.csv").is_file() == record["geometry"]
    assert (out / "road_width.png").is_file() == record["geometry"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tile": (100, 128)}, "tile 100x128 is not a size the network takes"),
        ({"tile": (64, 64)}, "tile 64x64"),
        ({"tile": (0, 128)}, "tile 0x128"),
        ({"tile": "big"}, "'big'"),
        ({"tile": (64, 128), "overlap": 64}, "overlap 64 px"),
        ({"tile_mode": "context", "overlap": 16, "context": 9}, "context 9 px"),
        ({"tile_mode": "plain", "context": 4}, "context 4 applies to tile_mode 'context'"),
        ({"tile_mode": "fancy"}, "'fancy'"),
        ({"scale": 0}, "scale must be a finite number > 0, got 0"),
    ],
)
def test_bad_options_are_refused_naming_the_value(options, message):
    """A tile the network cannot take, an overlap or context that leaves holes, an unknown
    mode or a bad scale raise ConfigError naming the value."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _stub(**options)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tile", "100", "128"], "tile 100x128"),
        (["--scale", "-1"], "scale must be a finite number > 0, got -1.0"),
        (["--mm-per-px", "0"], "mm_per_px must be a finite number > 0, got 0.0"),
    ],
)
def test_cli_refuses_bad_options_in_one_line(checkpoint, tmp_path, capsys, args, message):
    """Bad option values exit 2 with one error line naming them, and no output folder."""
    images = tmp_path / "photos"
    images.mkdir()
    Image.fromarray(_random_image(20, 30)).save(images / "a.png")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(
            ["predict", str(images), "--checkpoint", str(checkpoint), "--out", str(out), *args]
        )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not out.exists()
