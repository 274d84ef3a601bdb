"""Mixed-supervision runs: what num_segmented keeps, what it hides, and what it never changes.

The runs train a tiny folder data set (6 crack and 4 crack-free training images of 32x48, read at
the ``tiny`` preset's 64x128) for two epochs on the CPU, so each takes seconds.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crackkit.checkpoint import load_checkpoint
from crackkit.config import make_config
from crackkit.data.folder import DatasetError
from crackkit.pipeline import evaluate_run, prepare, report_run, supervise, train_run
from crackkit.run import Run

H, W = 32, 48
TIMING = ("time_s", "val_time_s", "compute_s")
PARAMS = {"epochs": 2, "validation_every": 1, "batch_size": 2, "eval_batch_size": 4}


def _bar_mask(row: int, col: int = 4, length: int = 40) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[row : row + 3, col : col + length] = 255
    return mask


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def make_dataset(root: Path) -> Path:
    counts = {"train": (6, 4), "val": (2, 1), "test": (2, 1)}
    for k, (split, (pos, neg)) in enumerate(counts.items()):
        for i in range(pos + neg):
            rng = np.random.default_rng([k, i])
            image = rng.integers(90, 170, (H, W, 3), dtype=np.uint8)
            mask = _bar_mask(4 + 4 * i) if i < pos else np.zeros((H, W), np.uint8)
            image[mask > 0] //= 3
            _save(root / split / "images" / f"{split}{i}.png", image)
            _save(root / split / "masks" / f"{split}{i}.png", mask)
    return root


def run(dataset: Path, run_dir: Path, **params) -> Path:
    cfg = make_config({"dataset": str(dataset), **PARAMS, **params}, preset="tiny")
    train_run(cfg, run_dir, progress=False)
    evaluate_run(run_dir, progress=False, n_gallery=0, bootstrap=0)
    return run_dir


def outcome(run_dir: Path) -> tuple[list[dict], dict, dict[str, torch.Tensor]]:
    """History without timing, metrics without timing or checkpoint path, last weights."""
    with (run_dir / "history.csv").open() as fh:
        history = [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(fh)]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("timing", "checkpoint"):
        metrics.pop(key)
    return history, metrics, load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def assert_same(a: Path, b: Path) -> None:
    ha, ma, wa = outcome(a)
    hb, mb, wb = outcome(b)
    assert ha == hb
    assert ma == mb
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def segmented(run_dir: Path) -> dict[str, int]:
    with (run_dir / "segmented.csv").open() as fh:
        return {r["image"]: int(r["is_segmented"]) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("mixed") / "cracks")


@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory) -> Path:
    return run(data, tmp_path_factory.mktemp("full") / "run")


@pytest.fixture(scope="module")
def two_masks(data, tmp_path_factory) -> Path:
    return run(data, tmp_path_factory.mktemp("k2") / "run", num_segmented=2)


@pytest.mark.parametrize("k", [6])
def test_num_segmented_at_the_positive_count_or_above_changes_nothing(data, full_run, tmp_path, k):
    """num_segmented = 6 (every positive) or more gives the run without the parameter."""
    assert_same(run(data, tmp_path / "run", num_segmented=k), full_run)
    assert set(segmented(full_run).values()) == {1}


def test_exactly_k_positives_are_recorded_as_segmented(two_masks):
    """segmented.csv lists every training image; 2 positives and every negative are segmented."""
    table = segmented(two_masks)
    assert len(table) == 10
    assert sum(v for k, v in table.items() if int(k[5:]) < 6) == 2
    assert all(table[f"train{i}"] == 1 for i in range(6, 10))
    assert "2 segmented, 4 image-level only" in (two_masks / "run.log").read_text()


def _other_positives(run_dir: Path) -> list[str]:
    return [k for k, v in segmented(run_dir).items() if v == 0]


def test_masks_of_image_level_positives_have_no_influence(data, two_masks, tmp_path):
    """Other masks in their place, or none at all and a label 1 in labels.csv: the same run."""
    hidden = _other_positives(two_masks)
    assert len(hidden) == 4
    redrawn = tmp_path / "redrawn"
    _copy(data, redrawn)
    for j, stem in enumerate(hidden):
        _save(redrawn / "train" / "masks" / f"{stem}.png", _bar_mask(2 + 6 * j, 10, 20))
    assert_same(run(redrawn, tmp_path / "r1", num_segmented=2), two_masks)

    labelled = tmp_path / "labelled"
    _copy(data, labelled)
    for stem in hidden:
        (labelled / "train" / "masks" / f"{stem}.png").unlink()
    rows = "".join(f"{stem},1\n" for stem in hidden)
    (labelled / "train" / "labels.csv").write_text("image,label\n" + rows)
    assert_same(run(labelled, tmp_path / "r2", num_segmented=2), two_masks)


def _copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)


def test_the_choice_is_kept_when_the_run_resumes(data, tmp_path):
    """A resumed run reads its segmented.csv, even where a fresh draw would now differ."""
    root = tmp_path / "growing"
    _copy(data, root)
    cfg = make_config({"dataset": str(root), **PARAMS, "num_segmented": 2}, preset="tiny")
    first = Run.create(cfg, tmp_path / "run")
    before = supervise(cfg, first, prepare(cfg, first, progress=False)).rows
    for i in range(10, 14):  # four more crack images: the permutation changes
        _save(root / "train" / "images" / f"train{i}.png", np.full((H, W, 3), 120, np.uint8))
        _save(root / "train" / "masks" / f"train{i}.png", _bar_mask(20))
    fresh = Run.create(cfg, tmp_path / "other")
    drawn = supervise(cfg, fresh, prepare(cfg, fresh, progress=False))
    resumed = Run.create(cfg, tmp_path / "run", resume=True)
    again = supervise(cfg, resumed, prepare(cfg, resumed, progress=False))
    assert drawn.rows != before
    kept = [r for r in again.rows if r["image"] in {b["image"] for b in before}]
    assert kept == before
    assert again.n_segmented == 2 and "as recorded" in again.source


def test_a_record_that_no_longer_fits_is_refused(data, tmp_path):
    cfg = make_config({"dataset": str(data), **PARAMS, "num_segmented": 2}, preset="tiny")
    r = Run.create(cfg, tmp_path / "run")
    (r.path / "segmented.csv").write_text("image,is_segmented\ngone,1\n")
    with pytest.raises(DatasetError, match="'gone' is not an image of the training split"):
        supervise(cfg, r, prepare(cfg, r, progress=False))


def test_train_num_and_no_segmented_positive(data, tmp_path):
    """train_num keeps 3 positives; with num_segmented 0 the prior initialisation is skipped
    and the log says so."""
    run_dir = run(data, tmp_path / "run", train_num=3, num_segmented=0)
    table = segmented(run_dir)
    assert len(table) == 7 and sorted(table.values()) == [0, 0, 0, 1, 1, 1, 1]
    log = (run_dir / "run.log").read_text()
    assert "Segmentation prior: skipped, no positive training image is segmented" in log
    assert "training as a weakly supervised classifier" in log
    assert "Returning dec_gradient_multiplier 1" in log
    report = report_run(run_dir).read_text()
    assert "Positives (segmented / image-level only)" in report
    assert "| Train | 3 (0 / 3) | 4 | 7 |" in report


def test_compare_notebook_draws_metric_against_the_number_of_masks(
    data, full_run, two_masks, tmp_path
):
    """05_compare over runs of num_segmented 2 (seeds 0 and 1) and all: the paper's figure, with
    the number of segmented positives read from each run."""
    import papermill

    from crackkit.compare import load_run, segmented_positives
    from crackkit.paths import NOTEBOOKS_DIR

    second_seed = run(data, tmp_path / "k2-seed1", num_segmented=2, seed=1)
    assert [segmented_positives(load_run(d)) for d in (full_run, two_masks, second_seed)] == [
        6,
        2,
        2,
    ]
    out = tmp_path / "COMPARE.md"
    papermill.execute_notebook(
        str(NOTEBOOKS_DIR / "05_compare.ipynb"),
        str(tmp_path / "compare.ipynb"),
        parameters={
            "run_dirs": ",".join(str(d) for d in (full_run, two_masks, second_seed)),
            "out": str(out),
        },
        kernel_name="python3",
        progress_bar=False,
    )
    text = out.read_text()
    assert "## Metric against the number of pixel masks" in text
    assert (tmp_path / "compare_num_segmented.png").stat().st_size > 10_000
    assert "| all |" in text and "| 2 |" in text
