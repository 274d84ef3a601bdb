"""A crash loses nothing, a rerun repeats exactly, and bad input gets a clear error.

The runs here train a tiny folder data set (5 training images of 32x48, of which an epoch takes the
2 positives and the 2 least-used negatives: two steps) for two epochs on the CPU, with a learning
rate that halves every epoch, so that a kill, a resume and a rerun each take seconds.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import crackkit.losses as losses_module
from crackkit.checkpoint import RESUME_KEYS, CheckpointError, load_checkpoint, save_checkpoint
from crackkit.cli import main
from crackkit.config import make_config
from crackkit.data.folder import DatasetError
from crackkit.files import atomic_write_bytes
from crackkit.pipeline import evaluate_run, prepare, train_run
from crackkit.run import Run, RunDirError, create_run_dir
from crackkit.specs import CHECKPOINT_FORMAT as F2
from crackkit.train import NonFiniteLossError

H, W = 32, 48
TIMING_COLUMNS = ("time_s", "val_time_s", "compute_s")
RUN_PARAMS = {
    "epochs": 2,
    "validation_every": 1,
    "batch_size": 2,
    "eval_batch_size": 4,
    "frequency_sampling": True,
    "scheduler_step": 1,
    "scheduler_gamma": 0.5,
}
CHECKPOINT_KEYS = {"model", "optimizer", "scheduler", "sampler", "rng", "history", "best", "epoch"}


def _save(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_dataset(root: Path, counts: dict[str, tuple[int, int]] | None = None) -> Path:
    """Write ``{split: (positives, negatives)}`` images with 0/255 masks; returns ``root``."""
    counts = counts or {"train": (2, 3), "val": (1, 1), "test": (1, 1)}
    for k, (split, (pos, neg)) in enumerate(counts.items()):
        for i in range(pos + neg):
            rng = np.random.default_rng([k, i])
            image = rng.integers(90, 170, (H, W, 3), dtype=np.uint8)
            mask = np.zeros((H, W), dtype=np.uint8)
            if i < pos:
                row = 6 + 5 * i
                mask[row : row + 3, 4:44] = 255
                image[mask > 0] //= 3
            _save(root / split / "images" / f"{split}{i}.png", image)
            _save(root / split / "masks" / f"{split}{i}.png", mask)
    return root


def run_config(dataset: Path, **changes):
    return make_config({"dataset": str(dataset), **RUN_PARAMS, **changes}, preset="tiny")


def train_and_evaluate(cfg, run_dir: Path, *, resume: bool = False) -> None:
    train_run(cfg, run_dir, resume=resume, progress=False)
    evaluate_run(run_dir, progress=False, n_gallery=0)


def history_without_timing(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def metrics_without_timing(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics.pop("timing")
    return metrics


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """The tiny folder data set shared by this module's runs."""
    return make_dataset(tmp_path_factory.mktemp("reliability") / "cracks")


@pytest.fixture(scope="module")
def reference_run(dataset, tmp_path_factory) -> Path:
    """One uninterrupted two-epoch run of the tiny data set."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    train_and_evaluate(run_config(dataset), run_dir)
    return run_dir


# ---------------------------------------------------------------------------------------------
# A crash loses nothing; a rerun repeats exactly

KILLED_TRAINING = """
import json, os, signal, sys

import crackkit.train
from crackkit.config import make_config
from crackkit.pipeline import train_run

original = crackkit.train.train_one_epoch
calls = []


def killed_in_epoch_2(model, loss_fn, loader, optimizer, **kwargs):
    calls.append(1)
    if len(calls) == 2:
        def batches():
            for i, batch in enumerate(loader):
                if i == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
                yield batch

        return original(model, loss_fn, batches(), optimizer, **kwargs)
    return original(model, loss_fn, loader, optimizer, **kwargs)


crackkit.train.train_one_epoch = killed_in_epoch_2
train_run(make_config(json.loads(sys.argv[1])), sys.argv[2], progress=False)
"""


def test_run_killed_mid_epoch_resumes_to_identical_results(dataset, reference_run, tmp_path):
    """SIGKILL after epoch 2's first step, then resume: same history and metrics as no kill."""
    cfg = run_config(dataset)
    run_dir = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_TRAINING, json.dumps(cfg.to_dict()), str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 1 and CHECKPOINT_KEYS <= set(last)
    assert set(last["rng"]) >= {"python", "numpy", "torch"}
    assert last["sampler"]["counts"] != [0, 0, 0] and last["scheduler"]["last_epoch"] == 1
    assert [r["epoch"] for r in history_without_timing(run_dir)] == ["1"]
    assert not (run_dir / "metrics.json").exists()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]

    train_and_evaluate(cfg, run_dir, resume=True)

    assert "after epoch 1/2" in (run_dir / "run.log").read_text()
    assert history_without_timing(run_dir) == history_without_timing(reference_run)
    assert metrics_without_timing(run_dir) == metrics_without_timing(reference_run)


def test_same_seed_gives_identical_runs(dataset, reference_run, tmp_path):
    """A second run with the same seed repeats history.csv, metrics.json and the weights."""
    run_dir = tmp_path / "again"
    train_and_evaluate(run_config(dataset), run_dir)
    assert history_without_timing(run_dir) == history_without_timing(reference_run)
    assert metrics_without_timing(run_dir) == metrics_without_timing(reference_run)
    for name in ("last.pt", "best.pt"):
        ours = load_checkpoint(run_dir / "checkpoints" / name)["model"]
        theirs = load_checkpoint(reference_run / "checkpoints" / name)["model"]
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_resume_before_the_first_checkpoint_starts_at_epoch_1(dataset, tmp_path):
    """A run that died before finishing epoch 1 (no last.pt yet) resumes from the start."""
    cfg = run_config(dataset, epochs=1, batch_size=4)
    run_dir = Run.create(cfg, tmp_path / "early").path
    train_run(cfg, run_dir, resume=True, progress=False)
    assert "no epoch was completed yet, starting at epoch 1" in (run_dir / "run.log").read_text()
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1


def test_non_finite_loss_stops_with_epoch_and_batch_and_keeps_last_checkpoint(
    dataset, tmp_path, monkeypatch
):
    """A NaN loss in epoch 2 stops training naming epoch and batch; last.pt holds epoch 1."""
    calls = []
    original = losses_module.segmentation_loss

    def nan_on_second_step(*args, **kwargs):
        calls.append(1)
        loss = original(*args, **kwargs)
        return loss * float("nan") if len(calls) == 2 else loss

    monkeypatch.setattr(losses_module, "segmentation_loss", nan_on_second_step)
    run_dir = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError) as err:
        train_run(run_config(dataset, batch_size=4), run_dir, progress=False)
    assert "the training loss became nan in epoch 2/2, batch 1 of 1" in str(err.value)
    assert "the last good checkpoint is kept" in str(err.value)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1
    assert [r["epoch"] for r in history_without_timing(run_dir)] == ["1"]
    assert "Training stopped: NonFiniteLossError" in (run_dir / "run.log").read_text()


# ---------------------------------------------------------------------------------------------
# A damaged or foreign checkpoint given to resume


def _foreign_checkpoint(cfg, path: Path, case: str) -> None:
    if case == "truncated":
        save_checkpoint(path, {"model": {"w": torch.zeros(4096)}, "config": cfg.to_dict()})
        path.write_bytes(path.read_bytes()[:3000])
    elif case == "other architecture":
        other = cfg.replace(architecture="segdecnet")
        save_checkpoint(path, {"format": F2, "model": {}, "config": other.to_dict(), "epoch": 1})
    elif case == "other parameters":
        state = {"format": F2, "model": {}, "config": cfg.replace(lr=0.01).to_dict()}
        save_checkpoint(path, state | {k: None for k in RESUME_KEYS})
    elif case == "best.pt as last.pt":
        state = {"format": F2, "model": {}, "config": cfg.to_dict(), "epoch": 1, "best": {}}
        save_checkpoint(path, state)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("truncated", "is damaged or not a crackkit checkpoint"),
        ("other architecture", "holds a 'segdecnet' model, but architecture 'segdecnet++'"),
        ("other parameters", "its run parameters differ in lr"),
        ("best.pt as last.pt", "it holds no optimizer, sampler, rng, history"),
    ],
)
def test_resume_refuses_a_damaged_or_foreign_checkpoint(dataset, tmp_path, case, message):
    """Resume names last.pt and the problem, and leaves the run folder's files as they were."""
    cfg = run_config(dataset)
    run_dir = Run.create(cfg, tmp_path / "run").path
    last = run_dir / "checkpoints" / "last.pt"
    _foreign_checkpoint(cfg, last, case)
    (run_dir / "history.csv").write_text("epoch,loss\n1,0.5\n")
    before = {p.name: p.read_bytes() for p in (last, run_dir / "history.csv")}
    with pytest.raises(CheckpointError) as err:
        train_run(cfg, run_dir, resume=True, progress=False)
    assert message in str(err.value) and str(last) in str(err.value)
    assert {p.name: p.read_bytes() for p in (last, run_dir / "history.csv")} == before
    assert not (run_dir / "checkpoints" / "best.pt").exists()


def test_cli_resume_with_a_damaged_checkpoint_fails_naming_it(dataset, tmp_path, capsys):
    """crackkit run --resume exits 2 naming the damaged last.pt, which it leaves as it was."""
    cfg = run_config(dataset)
    run_dir = Run.create(cfg, tmp_path / "run").path
    last = run_dir / "checkpoints" / "last.pt"
    _foreign_checkpoint(cfg, last, "truncated")
    before = last.read_bytes()
    assert main(["run", "--resume", "--run", str(run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "notebook 02_train.ipynb failed: CheckpointError: " in err
    assert f"checkpoint {last} is damaged or not a crackkit checkpoint" in err
    assert last.read_bytes() == before
    assert not (run_dir / "metrics.json").exists()


# ---------------------------------------------------------------------------------------------
# Bad data: the message names the file and what would be accepted


def _replace_with_garbage(root: Path) -> Path:
    path = root / "train" / "images" / "train0.png"
    path.write_bytes(b"this is not an image")
    return path


def _truncate(root: Path) -> Path:
    path = root / "test" / "images" / "test1.png"
    path.write_bytes(path.read_bytes()[:150])
    return path


def _empty_file(root: Path) -> Path:
    path = root / "val" / "images" / "val0.png"
    path.write_bytes(b"")
    return path


def _dangling_link(root: Path) -> Path:
    path = root / "train" / "images" / "train3.png"
    path.unlink()
    path.symlink_to(root / "gone.png")
    return path


def _stray_file(root: Path) -> Path:
    path = root / "train" / "images" / "notes.txt"
    path.write_text("todo")
    return path


def _drop_mask(root: Path) -> Path:
    (root / "train" / "masks" / "train1.png").unlink()
    return root / "train" / "images" / "train1.png"


def _small_mask(root: Path) -> Path:
    return _save(root / "val" / "masks" / "val0.png", np.zeros((16, 24), dtype=np.uint8))


def _grey_mask(root: Path) -> Path:
    ramp = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    return _save(root / "train" / "masks" / "train2.png", ramp)


def _zero_one_mask(root: Path) -> Path:
    mask = np.zeros((H, W), dtype=np.uint8)
    mask[10:12, 5:40] = 1
    return _save(root / "test" / "masks" / "test0.png", mask)


def _empty_split(root: Path) -> Path:
    for sub in ("images", "masks"):
        for path in (root / "test" / sub).iterdir():
            path.unlink()
    return root / "test" / "images"


def _no_split(root: Path) -> Path:
    for sub in ("images", "masks"):
        for path in (root / "test" / sub).iterdir():
            path.unlink()
        (root / "test" / sub).rmdir()
    (root / "test").rmdir()
    return root / "test"


def _no_positives(root: Path) -> Path:
    for i in (0, 1):
        _save(root / "train" / "masks" / f"train{i}.png", np.zeros((H, W), dtype=np.uint8))
    return root / "train"


BAD_DATA = {
    "corrupt image": (_replace_with_garbage, "not a readable image; accepted formats: .png"),
    "truncated image": (_truncate, "corrupt or truncated image"),
    "empty image file": (_empty_file, "not a readable image; accepted formats: .png"),
    "unreadable file (dangling link)": (_dangling_link, "file not found"),
    "file of another type": (_stray_file, "unsupported file extension '.txt'; accepted: .png"),
    "image without mask": (_drop_mask, "image with neither a mask in"),
    "mask of another size": (_small_mask, "mask is 16x24 (HxW) but its image"),
    "non-binary mask": (_grey_mask, "mask is not binary"),
    "0/1 mask": (_zero_one_mask, "holds only the values 0 and 1"),
    "empty split": (_empty_split, "split 'test' holds no images"),
    "missing split": (_no_split, "split folder 'test' not found"),
    "no crack in train": (_no_positives, "has no crack images (every mask is empty)"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_before_training_naming_the_file(tmp_path, case):
    """Preparing a run refuses each kind of bad data with a message naming the file or folder."""
    break_it, message = BAD_DATA[case]
    root = make_dataset(tmp_path / "cracks")
    culprit = break_it(root)
    run_dir = tmp_path / "run"
    cfg = run_config(root)
    with pytest.raises(DatasetError) as err:
        prepare(cfg, Run.create(cfg, run_dir))
    assert message in str(err.value) and str(culprit) in str(err.value)
    assert not (run_dir / "dataset.json").exists()


def test_nonexistent_dataset_lists_what_is_accepted(kit_dirs):
    """An unknown data set name says what a data set may be."""
    with pytest.raises(DatasetError, match="data set '/no/such/cracks' not found") as err:
        prepare(run_config(Path("/no/such/cracks")))
    assert "Use 'synthetic', a prepared name or a path to a folder" in str(err.value)


def test_cli_reports_bad_data_and_keeps_the_attempt(tmp_path, capsys):
    """crackkit run exits 2 naming the corrupt file; rerunning the folder says how to go on."""
    root = make_dataset(tmp_path / "cracks")
    culprit = _replace_with_garbage(root)
    run_dir = tmp_path / "run"
    argv = ["run", "--preset", "tiny", "--dataset", str(root), "--run", str(run_dir)]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "notebook 01_prepare.ipynb failed: DatasetError" in err
    assert f"{culprit}: not a readable image; accepted formats: .png" in err
    # The attempt records its parameters; nothing was trained (no environment.json, no checkpoint)
    assert json.loads((run_dir / "config.json").read_text())["dataset"] == str(root)
    assert not (run_dir / "environment.json").exists()
    assert not (run_dir / "checkpoints" / "last.pt").exists()
    failed = (run_dir / "notebooks" / "01_prepare.ipynb").read_bytes()

    assert main([*argv, "--quiet"]) == 2
    assert "exists from an earlier attempt and is not overwritten" in capsys.readouterr().err
    assert (run_dir / "notebooks" / "01_prepare.ipynb").read_bytes() == failed


def test_cli_says_how_to_resume_when_the_kernel_dies(tmp_path, capsys, monkeypatch):
    """A training kernel killed from outside ends in one error line with the resume command."""
    import papermill
    from nbclient.exceptions import DeadKernelError

    run_dir = tmp_path / "run"

    def kernel_killed_in_training(src, dst, parameters, **kwargs):
        if src.endswith("02_train.ipynb"):
            (run_dir / "environment.json").write_text("{}")  # train_run writes it first
            raise DeadKernelError("Kernel died")

    monkeypatch.setattr(papermill, "execute_notebook", kernel_killed_in_training)
    assert main(["run", "--preset", "tiny", "--run", str(run_dir), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "02_train.ipynb stopped: its kernel died (killed, or out of memory)" in err
    assert f"continue with: crackkit run --resume --run {run_dir}" in err


# ---------------------------------------------------------------------------------------------
# Finished runs are kept; outputs are written whole or not at all


def _finished(run_dir: Path, *files: str) -> dict[str, bytes]:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text("{}")
    for name in files:
        (run_dir / name).write_text(f"{name} of the earlier run")
    return {p.name: p.read_bytes() for p in run_dir.iterdir()}


def test_finished_run_is_refused_and_kept(dataset, tmp_path):
    """Training into a folder with metrics.json is refused; its files stay as they were."""
    run_dir = tmp_path / "done"
    before = _finished(run_dir, "metrics.json")
    with pytest.raises(RunDirError, match="already holds a finished run"):
        train_run(run_config(dataset), run_dir, progress=False)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_finished_run_cannot_be_resumed(tmp_path, capsys):
    """--resume on a run with REPORT.md is refused: nothing is rerun or rewritten."""
    run_dir = tmp_path / "done"
    before = _finished(run_dir, "metrics.json", "REPORT.md")
    assert main(["run", "--resume", "--run", str(run_dir), "--quiet"]) == 2
    assert "the run is finished (REPORT.md exists)" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_overwrite_keeps_the_old_files_aside(tmp_path):
    """overwrite=True moves the finished run into superseded-*/ instead of deleting it."""
    run_dir = tmp_path / "done"
    before = _finished(run_dir, "metrics.json", "REPORT.md")
    create_run_dir(run_dir, overwrite=True)
    (kept,) = run_dir.glob("superseded-*")
    assert {p.name: p.read_bytes() for p in kept.iterdir()} == before
    assert not (run_dir / "metrics.json").exists()


def test_unfinished_run_is_not_restarted_without_resume(tmp_path):
    """A folder holding last.pt is refused unless resumed or overwritten."""
    run_dir = tmp_path / "half"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"epoch 3")
    with pytest.raises(RunDirError, match="holds an unfinished run; resume it"):
        create_run_dir(run_dir)
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == b"epoch 3"


def test_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    """A write that fails before its rename keeps the old checkpoint and leaves no temp file."""
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"format": F2, "model": {}, "config": {}, "epoch": 1})

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr("crackkit.files.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"model": {}, "config": {}, "epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_written_files_get_the_usual_permissions(tmp_path):
    """Atomically written files are readable as a plain open() would leave them, not 0600."""
    umask = os.umask(0o022)
    os.umask(umask)
    path = atomic_write_bytes(tmp_path / "metrics.json", b"{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_prepared_run_is_not_decoded_again(tmp_path, monkeypatch):
    """Notebook 01 decodes every image and records dataset.json; training's prepare of the same
    run reads the record and does not decode the images a second time (a changed data set is)."""
    import crackkit.pipeline as pipeline

    root = make_dataset(tmp_path / "cracks")
    cfg = run_config(root)
    run = Run.create(cfg, tmp_path / "run")
    decoded = []
    real = pipeline._decode_all
    monkeypatch.setattr(pipeline, "_decode_all", lambda *a, **k: decoded.append(1) or real(*a, **k))
    prepare(cfg, run, progress=False)
    prepare(cfg, run, progress=False)
    assert decoded == [1]
    record = json.loads(run.file("dataset").read_text())
    assert record["root"] == str(root) and record["counts"]["train"]["sum"] > 0
    extra = next((root / "train" / "images").iterdir())
    extra.with_name("zz-copy.png").write_bytes(extra.read_bytes())
    (root / "train" / "masks" / "zz-copy.png").write_bytes(
        (root / "train" / "masks" / extra.name).read_bytes()
    )
    prepare(cfg, run, progress=False)
    assert decoded == [1, 1]
