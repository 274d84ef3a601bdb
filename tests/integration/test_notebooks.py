"""Notebooks: committed clean, parameters equal to RunConfig, validated on injection, executable."""

from __future__ import annotations

import ast
import dataclasses
import json

import papermill
import pytest

from crackkit.batch import NOTEBOOKS as BATCH_NOTEBOOKS
from crackkit.config import DATA_FIELDS, RunConfig, field_names
from crackkit.paths import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
CONFIG_NOTEBOOKS = {
    "01_prepare.ipynb": ("run_dir", "crack500_url", "crack500_archive", "crack500_sha256"),
    "02_train.ipynb": ("run_dir", "resume", "overwrite"),
}
RUN_NOTEBOOKS = {
    "03_evaluate.ipynb": ("run_dir", "split", "n_gallery"),
    "04_report.ipynb": ("run_dir",),
    "05_compare.ipynb": ("run_dirs", "out"),
    "06_apply.ipynb": ("run_dir", "images", "mm_per_px", "out"),
}


def _parameters_cell(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    return "".join(tagged[0]["source"])


def test_all_notebooks_exist():
    """The pipeline's four notebooks, the compare and the apply notebooks are present."""
    assert [p.name for p in NOTEBOOKS] == sorted(CONFIG_NOTEBOOKS | RUN_NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_without_outputs(path):
    """No code cell carries outputs or an execution count."""
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name} has outputs"
            assert cell.get("execution_count") is None, f"{path.name} has execution counts"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_holds_literals_only(path):
    """The parameters cell assigns literal values and derives nothing."""
    for node in ast.parse(_parameters_cell(path)).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1
        ast.literal_eval(node.value)


@pytest.mark.parametrize("name", sorted(CONFIG_NOTEBOOKS))
def test_config_notebook_parameters_match_runconfig(name):
    """papermill sees exactly the RunConfig fields the notebook uses (those the batch driver
    passes it), with RunConfig's defaults, plus its run options."""
    uses = {nb: fields for _, nb, fields in BATCH_NOTEBOOKS}[name]
    params = papermill.inspect_notebook(str(NOTEBOOKS_DIR / name))
    assert set(params) == set(uses) | set(CONFIG_NOTEBOOKS[name])
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    for field in uses:
        assert ast.literal_eval(params[field]["default"]) == defaults[field], field


def test_the_train_notebook_takes_every_field_and_prepare_the_data_fields():
    """Training uses the whole configuration; preparing the data only DATA_FIELDS."""
    uses = {nb: fields for _, nb, fields in BATCH_NOTEBOOKS}
    assert set(uses["02_train.ipynb"]) == set(field_names())
    assert set(uses["01_prepare.ipynb"]) == set(DATA_FIELDS)


class _Spy:
    """A RunConfig that records which fields are read."""

    def __init__(self, cfg):
        self._cfg, self.read = cfg, set()

    def __getattr__(self, name):
        self.read.add(name)
        return getattr(self._cfg, name)


def test_preparing_the_data_reads_only_the_data_fields(tmp_path, monkeypatch):
    """What notebook 01 calls (prepare, plot_samples) reads no run parameter but DATA_FIELDS."""
    from crackkit.config import make_config
    from crackkit.pipeline import prepare
    from crackkit.report import plot_samples

    monkeypatch.setenv("CRACKKIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("crackkit.paths.PROCESSED_DIR", tmp_path / "data" / "processed")
    spy = _Spy(make_config(preset="tiny"))
    prepared = prepare(spy, progress=False, decode_images=True)
    plot_samples(prepared.splits["train"], spy, tmp_path / "samples.png")
    assert spy.read and spy.read <= set(DATA_FIELDS), spy.read - set(DATA_FIELDS)


@pytest.mark.parametrize("name", sorted(RUN_NOTEBOOKS))
def test_run_notebook_parameters(name):
    """Evaluate, report, compare and apply notebooks take run folders (and their own options)
    only."""
    assert set(papermill.inspect_notebook(str(NOTEBOOKS_DIR / name))) == set(RUN_NOTEBOOKS[name])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"learning_rate": 0.1}, "unknown notebook parameter(s) 'learning_rate'"),
        ({"lr": -1.0}, "parameter 'lr' got -1.0; it must be > 0"),
        ({"optimizer": "rmsprop"}, "allowed values: 'adam', 'sgd'"),
        ({"input_height": 100}, "multiples of 8"),
    ],
)
def test_train_notebook_refuses_bad_parameters(tmp_path, kit_dirs, params, message):
    """A bad injected parameter stops the train notebook with a message naming it."""
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / "02_train.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters=params,
            kernel_name="python3",
            progress_bar=False,
        )
    assert message in info.value.evalue
    assert not any(kit_dirs["runs"].iterdir()), "a refused run must not create a run folder"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"run_dir": "x"}, "unknown notebook parameter(s) 'run_dir'"),
        ({"run_dirs": 5}, "parameter 'run_dirs' must be a comma-separated string"),
    ],
)
def test_compare_notebook_refuses_bad_parameters(tmp_path, params, message):
    """A bad injected parameter stops the compare notebook with a message naming it."""
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / "05_compare.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters=params,
            kernel_name="python3",
            progress_bar=False,
        )
    assert message in info.value.evalue


def test_prepare_notebook_fetches_crack500_from_an_archive(tmp_path, kit_dirs):
    """With crack500_archive set, the prepare notebook imports the archive and prepares it."""
    import zipfile

    import numpy as np
    from PIL import Image

    src = tmp_path / "src" / "CRACK500"
    for split, n in {"train": 2, "val": 1, "test": 1}.items():
        for i in range(n):
            folder = src / f"{split}crop"
            folder.mkdir(parents=True, exist_ok=True)
            mask = np.zeros((24, 40), np.uint8)
            mask[5 + i, :] = 255
            Image.fromarray(np.full((24, 40, 3), 120, np.uint8)).save(folder / f"{split}{i}.jpg")
            Image.fromarray(mask).save(folder / f"{split}{i}.png")
    archive = tmp_path / "CRACK500.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(src.parent.rglob("*.*")):
            zf.write(path, path.relative_to(src.parent).as_posix())
    papermill.execute_notebook(
        str(NOTEBOOKS_DIR / "01_prepare.ipynb"),
        str(tmp_path / "out.ipynb"),
        parameters={
            "dataset": "crack500",
            "input_height": 64,
            "input_width": 128,
            "crack500_archive": str(archive),
        },
        kernel_name="python3",
        progress_bar=False,
    )
    processed = kit_dirs["processed"] / "crack500"
    assert sorted(p.name for p in (processed / "train" / "images").iterdir()) == [
        "train0.jpg",
        "train1.jpg",
    ]
    assert (kit_dirs["data"] / "raw" / "CRACK500.zip").is_file()


@pytest.fixture(scope="module")
def tiny_run(module_kit_dirs):
    """A tiny trained segdecnet++ run (one epoch at 64x128), made as test_predict.py makes it."""
    mp = pytest.MonkeyPatch()
    try:
        import crackkit.run
        from crackkit.config import make_config
        from crackkit.pipeline import train_run

        # Recording versions imports papermill and friends (seconds); not what is tested here.
        mp.setattr(crackkit.run, "environment_info", lambda device=None: {"device": device})
        run_dir = module_kit_dirs["runs"] / "tiny"
        small = {"synthetic_train": 4, "synthetic_val": 2, "synthetic_test": 1}
        cfg = make_config(
            {"epochs": 1, "architecture": "segdecnet++", "amp": "off", **small}, preset="tiny"
        )
        train_run(cfg, run_dir, progress=False)
        yield run_dir
    finally:
        mp.undo()


def test_apply_notebook_on_a_tiny_run(tiny_run, tmp_path):
    """06_apply.ipynb predicts a folder of photos (one large enough to be tiled) and writes the
    maps, predictions.csv, geometry.csv, width overlays and the width histogram."""
    import csv

    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"road.jpg": (200, 300), "small.png": (40, 60)}.items():
        arr = rng.integers(90, 170, (h, w, 3), dtype=np.uint8)
        arr[h // 2 - 1 : h // 2 + 2, 5:-5] = 20  # a dark horizontal "crack"
        Image.fromarray(arr).save(photos / name)
    out = tmp_path / "pred"
    papermill.execute_notebook(
        str(NOTEBOOKS_DIR / "06_apply.ipynb"),
        str(tmp_path / "06.ipynb"),
        parameters={
            "run_dir": str(tiny_run),
            "images": str(photos),
            "mm_per_px": 0.5,
            "out": str(out),
        },
        kernel_name="python3",
        progress_bar=False,
    )
    with open(out / "predictions.csv", newline="") as fh:
        assert [r["image"] for r in csv.DictReader(fh)] == ["road.jpg", "small.png"]
    with open(out / "geometry.csv", newline="") as fh:
        assert csv.DictReader(fh).fieldnames[:3] == ["image", "id", "length_px"]
    for stem in ("road", "small"):
        assert (out / f"{stem}_width.png").is_file() and (out / f"{stem}_overlay.png").is_file()
    assert (out / "width_histogram.png").is_file()
    record = json.loads((out / "predict.json").read_text())
    assert record["mm_per_px"] == 0.5 and record["tiled_images"] == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"images": ""}, "parameter 'images' is empty"),
        ({"images": "x", "mm_per_px": -1}, "parameter 'mm_per_px' must be a number >= 0"),
    ],
)
def test_apply_notebook_refuses_bad_parameters(tmp_path, params, message):
    """A missing folder of photos or a negative pixel size stops the notebook, named."""
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(NOTEBOOKS_DIR / "06_apply.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters=params,
            kernel_name="python3",
            progress_bar=False,
        )
    assert message in info.value.evalue
