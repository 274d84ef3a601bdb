"""Apply a predictor to a folder of photos and write the results: maps, masks, overlays, CSVs.

:func:`predict_folder` reads every image of a folder, predicts it with a
:class:`~crackkit.predict.Predictor` (from a run, a checkpoint, original weights or an ONNX graph)
and writes the outputs below. What is loaded, the thresholds and how an image is processed (scale,
whole or tiled, test-time augmentation, ONNX) are described in :mod:`crackkit.predict`.

Usage from Python or a notebook::

    from crackkit.apply import predict_folder

    # A whole folder: writes maps, masks, overlays and predictions.csv, returns a summary.
    report = predict_folder("photos", "runs/20250101-120000-crack500")
    print(report.out_dir)
    for r in report.results:
        print(r.image.name, r.score, r.decision, r.crack_pixels)

    # Road photos: tiles of the run's input size (the default), flips averaged, photos twice as
    # fine as the training images halved (scale 0.5), crack geometry in millimetres (0.4 mm per
    # pixel of the photo).
    report = predict_folder("photos", "runs/...", tta=True, scale=0.5, mm_per_px=0.4)

From the command line::

    crackkit predict IMAGES_DIR --run DIR [--out DIR [--overwrite]] [--checkpoint PATH]
        [--device auto|cpu|cuda|cuda:N|mps] [--tile H W | --no-tile] [--overlap PX]
        [--tile-mode global|plain|context] [--context PX] [--tta] [--scale F] [--geometry]
        [--mm-per-px X]
    crackkit predict IMAGES_DIR --onnx model.onnx [--out DIR]

Reading. The EXIF orientation of a photo is applied, so that every output has the orientation the
photo is displayed in (the transposition of PIL's ``ImageOps.exif_transpose``; ``predict.json``
lists the images it turned). The training data reader (:func:`crackkit.data.folder.read_image`)
keeps reading pixels as stored, because the masks are drawn on the stored pixels. Grayscale, RGB
and RGBA images are accepted in the formats of :data:`crackkit.data.folder.IMAGE_EXTENSIONS`; the
predictor brings them to its model's channels (:mod:`crackkit.predict`).

Output of :func:`predict_folder`, per image ``<stem>`` of the folder:

* ``<stem>_prob.png``: 8-bit probability map, ``round(255 * prob)`` (divide by 255 to read it);
* ``<stem>_mask.png``: binary mask at ``threshold_seg``, 0 or 255;
* ``<stem>_overlay.png``: the image, dimmed, with predicted crack pixels in red;
* ``predictions.csv``: one row per image with columns image, width, height, score, decision (0/1),
  crack_pixels, threshold_seg, threshold_dec, n_cracks (8-connected cracks of the mask) and
  crack_length_px (their total length, :func:`crackkit.geometry.measure`); written last, once
  every image succeeded;
* with ``geometry=True`` or ``mm_per_px`` (``--geometry``, ``--mm-per-px X``): ``geometry.csv``,
  one row per crack of each image's mask, columns ``image`` and
  :data:`crackkit.geometry.GEOMETRY_COLUMNS` (:func:`crackkit.geometry.rows`; the millimetre
  columns empty without ``mm_per_px``), and ``<stem>_width.png``, the image dimmed with each
  crack's skeleton coloured by its local width (:func:`crackkit.geometry.skeleton_widths`, in mm
  when ``mm_per_px`` is given, else px) and a colour bar;
* ``predict.json``: the weights, thresholds and every option above, the predictor's included
  (:meth:`~crackkit.predict.Predictor.options`: the tile, overlap, mode and margin among them).

``ImageResult.tiles`` (in the returned report) gives the windows per image.

The default output folder is ``RUN_DIR/predictions/<images folder name>-<timestamp>/``. An existing
output folder is used only when it is empty: predictions never overwrite files.

Errors fail fast, before any output is written where possible. The folder's image files are
checked from their headers first; an unreadable, corrupt or truncated image raises
:class:`~crackkit.data.folder.DatasetError` naming the file (a file whose pixels fail to decode
after its header passed stops the run there, and the folder keeps the images done before it but
no ``predictions.csv``). A folder without images, or two images sharing a stem (``a.png`` and
``a.jpg`` would write the same outputs), also raises ``DatasetError``. Hidden files and
``Thumbs.db``/``desktop.ini`` are ignored; other files and subfolders are skipped with a
:class:`~crackkit.predict.PredictWarning` that lists them.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image
from scipy import ndimage as ndi
from tqdm.auto import tqdm

from crackkit.config import ConfigError
from crackkit.data.folder import (
    IMAGE_EXTENSIONS,
    DatasetError,
    image_size,
    read_image,
    visible_entries,
)
from crackkit.files import atomic_write_json, atomic_write_text, write_csv
from crackkit.geometry import GEOMETRY_COLUMNS, check_mm_per_px, measure, skeleton_widths
from crackkit.geometry import rows as geometry_rows
from crackkit.predict import Predictor, PredictWarning, padded_shape
from crackkit.report import error_overlay
from crackkit.run import RUN_FILES, RunDirError
from crackkit.specs import MAX_IMAGE_PIXELS
from crackkit.tiling import DEFAULT_TILE_MODE, resolve_options, scaled_size

__all__ = [
    "CSV_COLUMNS",
    "GEOMETRY_CSV_COLUMNS",
    "ImageResult",
    "PredictReport",
    "list_images",
    "plot_width_histogram",
    "predict_folder",
]

CSV_COLUMNS = (
    "image",
    "width",
    "height",
    "score",
    "decision",
    "crack_pixels",
    "threshold_seg",
    "threshold_dec",
    "n_cracks",
    "crack_length_px",
)
#: Columns of ``geometry.csv``: the image, then :data:`crackkit.geometry.GEOMETRY_COLUMNS`.
GEOMETRY_CSV_COLUMNS = ("image", *GEOMETRY_COLUMNS)

#: EXIF orientation -> the transposition that shows the stored pixels as displayed (PIL's
#: ``ImageOps.exif_transpose`` table).
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


@dataclass
class ImageResult:
    """What :func:`predict_folder` found in one image and where it wrote the outputs.

    ``width`` and ``height`` are those of the image as displayed (EXIF orientation applied);
    ``orientation`` is its EXIF orientation tag (1: none); ``tiles`` the network inputs of one
    view (1: the image ran whole). ``n_cracks`` and ``crack_length_px`` sum up the mask's
    cracks; with geometry, ``cracks`` holds :func:`crackkit.geometry.measure`'s dicts,
    ``widths_px`` the local widths of every skeleton pixel and ``width_path`` the width overlay.
    """

    image: Path
    width: int
    height: int
    score: float
    decision: bool
    crack_pixels: int
    prob_path: Path
    mask_path: Path
    overlay_path: Path
    n_cracks: int = 0
    crack_length_px: float = 0.0
    orientation: int = 1
    tiles: int = 1
    cracks: list[dict[str, Any]] | None = None
    widths_px: np.ndarray | None = None
    width_path: Path | None = None


@dataclass
class PredictReport:
    """Summary of :func:`predict_folder`: output folder, thresholds used, one result per image.

    ``geometry_path`` is ``geometry.csv`` (None without geometry); ``mm_per_px`` the pixel size
    the geometry used; ``options`` the prediction options
    (:meth:`~crackkit.predict.Predictor.options`).
    """

    out_dir: Path
    csv_path: Path
    checkpoint: Path | None
    architecture: str
    device: str
    threshold_seg: float
    threshold_dec: float
    validated: bool
    results: list[ImageResult] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    geometry_path: Path | None = None
    mm_per_px: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.results)

    @property
    def n_cracked(self) -> int:
        """Images whose score reaches the decision threshold."""
        return sum(r.decision for r in self.results)

    def rows(self) -> list[dict[str, Any]]:
        """The rows of ``predictions.csv`` (e.g. for ``pandas.DataFrame(report.rows())``)."""
        return [
            {
                "image": r.image.name,
                "width": r.width,
                "height": r.height,
                "score": r.score,
                "decision": int(r.decision),
                "crack_pixels": r.crack_pixels,
                "threshold_seg": self.threshold_seg,
                "threshold_dec": self.threshold_dec,
                "n_cracks": r.n_cracks,
                "crack_length_px": r.crack_length_px,
            }
            for r in self.results
        ]

    def geometry_rows(self) -> list[dict[str, Any]]:
        """The rows of ``geometry.csv``: one per crack, columns :data:`GEOMETRY_CSV_COLUMNS`
        (empty without geometry)."""
        out: list[dict[str, Any]] = []
        for r in self.results:
            if r.cracks is not None:
                out += geometry_rows(r.cracks, r.image.name)
        return out


def list_images(images_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """The image files of a folder (not recursive), sorted, and the other entries it skips.

    A single image file is accepted too. See the module docstring for the rules.

    Raises:
        DatasetError: missing folder, no image in it, or two images sharing a stem.
    """
    images_dir = Path(images_dir)
    accepted = ", ".join(IMAGE_EXTENSIONS)
    if images_dir.is_file():
        if images_dir.suffix.lower() not in IMAGE_EXTENSIONS:
            raise DatasetError(
                f"{images_dir}: unsupported file extension {images_dir.suffix!r}; "
                f"accepted: {accepted}"
            )
        return [images_dir], []
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: image folder does not exist")
    images: list[Path] = []
    skipped: list[Path] = []
    by_stem: dict[str, Path] = {}
    for path in visible_entries(images_dir):
        if path.is_dir() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            skipped.append(path)
            continue
        if path.stem in by_stem:
            raise DatasetError(
                f"{path} and {by_stem[path.stem]} share the stem {path.stem!r}; their outputs "
                "would have the same names. Rename one of them"
            )
        by_stem[path.stem] = path
        images.append(path)
    if not images:
        raise DatasetError(f"{images_dir}: no images to predict (accepted: {accepted})")
    return images, skipped


def _output_dir(
    out_dir: str | Path | None, base: Path, name: str, *, overwrite: bool = False
) -> Path:
    if out_dir is not None:
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise RunDirError(f"{out} is a file; give a folder for the predictions")
        if out.exists() and any(out.iterdir()):
            if not overwrite:
                raise RunDirError(
                    f"{out} exists and is not empty; choose another output folder, or pass "
                    "overwrite=True (--overwrite; its files are moved into superseded-<time>/)"
                )
            keep = out / f"superseded-{_dt.datetime.now().strftime('%Y%m%d-%H%M%S-%f')}"
            keep.mkdir()
            for child in list(out.iterdir()):
                if child != keep and not child.name.startswith("superseded-"):
                    child.rename(keep / child.name)
        out.mkdir(parents=True, exist_ok=True)
        return out.resolve()
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    first = base / f"{name}-{stamp}"
    for k in range(1, 1000):
        candidate = first if k == 1 else first.with_name(f"{first.name}-{k}")
        try:
            candidate.mkdir(parents=True)
        except FileExistsError:
            continue
        return candidate.resolve()
    raise RunDirError(f"cannot find a free output folder name next to {first}")


def _default_base(run_dir: Path | None, checkpoint: Path) -> Path:
    """``RUN_DIR/predictions``; for a bare checkpoint, its run folder's or its own folder's."""
    if run_dir is not None:
        return run_dir / RUN_FILES["predictions"]
    ckpt_dir = checkpoint.resolve().parent
    if ckpt_dir.name == RUN_FILES["checkpoints"]:
        return ckpt_dir.parent / RUN_FILES["predictions"]
    return ckpt_dir / RUN_FILES["predictions"]


def _overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): the image dimmed, predicted crack pixels red."""
    out = error_overlay(rgb, np.zeros_like(mask), mask)
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _save_png(array: np.ndarray, path: Path) -> Path:
    Image.fromarray(array).save(path, format="PNG")
    return path


def _orientation(path: Path) -> int:
    """The EXIF orientation tag of an image file (1 when it has none or an unusable one)."""
    try:
        with Image.open(path) as img:
            value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block means no orientation to honour
        return 1
    return int(value) if isinstance(value, int) and value in _EXIF_TRANSPOSE else 1


def _displayed(array: np.ndarray, orientation: int) -> np.ndarray:
    """uint8 (H, W, 3) stored pixels shown as the EXIF ``orientation`` says they are displayed."""
    method = _EXIF_TRANSPOSE.get(orientation)
    if method is None:
        return array
    return np.asarray(Image.fromarray(array).transpose(method))


def _displayed_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _write_table(path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> Path:
    """A CSV with this header even without rows (floats as repr, None as an empty cell)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(row.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def _csv_cell(value: Any) -> Any:
    return "" if value is None else repr(value) if isinstance(value, float) else value


def predict_folder(
    images_dir: str | Path,
    run_dir: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    device: str | torch.device | None = "auto",
    batch_size: int = 8,
    progress: bool = True,
    original_weights: str | Path | None = None,
    architecture: str | None = None,
    input_size: tuple[int, int] = (360, 640),
    onnx: str | Path | None = None,
    tile: tuple[int, int] | str | None = "auto",
    overlap: int | tuple[int, int] | None = None,
    tile_mode: str | None = None,
    context: int | tuple[int, int] | None = None,
    tta: bool = False,
    scale: float = 1.0,
    mm_per_px: float | None = None,
    geometry: bool = False,
    predictor: Predictor | None = None,
    precision: str = "auto",
    max_pixels: int | None = MAX_IMAGE_PIXELS,
    overwrite: bool = False,
) -> PredictReport:
    """Predict every image of ``images_dir`` with a trained run and write the results.

    Args:
        images_dir: folder of images (any size, png/jpg/bmp/tif, grayscale/RGB/RGBA), or one image.
        run_dir: run folder; its chosen checkpoint is used unless ``checkpoint`` is given.
        out_dir: output folder, new or empty; default ``RUN_DIR/predictions/<name>-<timestamp>``
            (for a bare checkpoint, the ``predictions`` folder beside its run or itself).
        overwrite: an ``out_dir`` that holds files is reused: they are moved into its
            ``superseded-<time>/`` subfolder first, never deleted.
        checkpoint: checkpoint file; enough on its own (``run_dir`` may then be None).
        device: ``auto`` or None (CUDA when present), ``cpu``, ``cuda`` or a ``torch.device``.
        batch_size: images of one padded size (or windows of a tiled image) run together this
            many at a time.
        progress: show tqdm progress bars (images, and the windows of large tiled images).
        original_weights: a state dict saved by the authors' code instead of a crackkit run
            (with ``architecture`` and the ``input_size`` it was trained at); see
            :meth:`~crackkit.predict.Predictor.from_original`.
        onnx: a graph written by :func:`crackkit.export.export_onnx`, run by onnxruntime
            (:meth:`~crackkit.predict.Predictor.from_onnx`); with ``run_dir`` the results go
            under that run.
        tile: ``"auto"`` (tiles of the run's input size for large images), ``(H, W)`` or None
            (every image whole); this and the five options below are the prediction options of
            :class:`~crackkit.predict.Predictor` (:mod:`crackkit.predict` docstring).
        overlap: pixels shared by consecutive tiles.
        tile_mode: ``global``, ``plain`` or ``context``.
        context: the margin a context tile drops at each side.
        tta: average the image and its mirrors.
        scale: resize factor applied to the photos before prediction.
        mm_per_px: the photos' pixel size in millimetres; implies ``geometry`` and adds the
            millimetre columns.
        geometry: write ``geometry.csv`` and ``<stem>_width.png`` (pixel units).
        predictor: a ready :class:`~crackkit.predict.Predictor` instead of
            ``run_dir``/``checkpoint``/... (its own options are used; leave the options above at
            their defaults). Without ``run_dir`` and a checkpoint path of its own, ``out_dir`` is
            needed.
        precision: ``"auto"`` (float32 on the CPU, the run's ``amp`` on a GPU), ``"float32"``
            or ``"bf16"``; see :mod:`crackkit.predict`.
        max_pixels: an image of more pixels (after its header) is refused before anything is
            decoded or written; None: no limit of crackkit's own.

    Returns:
        A :class:`PredictReport`; the files are described in the module docstring.

    Raises:
        DatasetError: missing or empty folder, an unreadable image (named), duplicate stems.
        RunDirError: ``run_dir`` is no run folder, or ``out_dir`` exists and is not empty (and
            not ``overwrite``).
        CheckpointError: no checkpoint in the run, or a damaged one (or ONNX model).
        ConfigError: a bad tile, overlap, tile mode, context, scale or ``mm_per_px`` (named).
        OnnxDependencyError: ``onnx`` is given and onnxruntime is not installed.
    """
    t0 = time.perf_counter()
    sources = (run_dir, checkpoint, original_weights, onnx)
    if predictor is not None:
        if any(s is not None for s in sources[1:]):
            raise ValueError("a ready predictor holds its weights: give no checkpoint or model")
        defaults = ("auto", None, None, None, False, 1.0)
        given = (tile, overlap, tile_mode, context, tta, scale)
        if any(a is not b and a != b for a, b in zip(given, defaults, strict=True)):
            raise ValueError(
                "a ready predictor uses its own options: set them with predictor.configure(...)"
            )
        if run_dir is None and predictor.checkpoint is None and out_dir is None:
            raise ValueError("a predictor without a checkpoint file needs an out_dir")
    elif all(s is None for s in sources):
        raise ValueError("give a run folder, a checkpoint file, original weights or an ONNX model")
    if onnx is not None and (checkpoint is not None or original_weights is not None):
        raise ValueError("an ONNX model holds its weights: give it without checkpoint or weights")
    if original_weights is not None and architecture is None:
        raise ValueError("original weights need their architecture (segdecnet, ...)")
    mm_per_px = check_mm_per_px(mm_per_px)
    geometry = bool(geometry) or mm_per_px is not None
    options = {
        "tile": tile,
        "overlap": overlap,
        "tile_mode": tile_mode,
        "context": context,
        "tta": tta,
        "scale": scale,
        "progress": progress,
    }
    if predictor is None:  # checked before any file is read (an "auto" tile after loading)
        mode = DEFAULT_TILE_MODE if tile_mode is None else tile_mode
        resolve_options(tile, overlap, mode, context, scale, None)
    run_path = Path(run_dir) if run_dir is not None else None
    if run_path is not None and not run_path.is_dir():
        raise RunDirError(f"no run folder at {run_path}")
    paths, skipped = list_images(images_dir)
    if skipped:
        shown = ", ".join(p.name for p in skipped[:5])
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        warnings.warn(
            f"skipped {len(skipped)} entries of {images_dir} that are not images "
            f"({', '.join(IMAGE_EXTENSIONS)}): {shown}{more}",
            PredictWarning,
            stacklevel=2,
        )
    if max_pixels is not None and (isinstance(max_pixels, bool) or int(max_pixels) < 1):
        raise ConfigError(f"max_pixels must be a positive number of pixels, got {max_pixels!r}")
    sizes = {p: image_size(p, max_pixels) for p in paths}
    orientations = {p: _orientation(p) for p in paths}
    sizes = {p: _displayed_size(sizes[p], orientations[p]) for p in paths}
    kw = {"device": device, "batch_size": batch_size, "precision": precision, **options}
    if predictor is not None:
        pass
    elif onnx is not None:
        predictor = Predictor.from_onnx(onnx, **kw)
    elif original_weights is not None:
        predictor = Predictor.from_original(
            original_weights, architecture, height=input_size[0], width=input_size[1], **kw
        )
    elif checkpoint is not None:
        predictor = Predictor.from_checkpoint(checkpoint, **kw)
    else:
        predictor = Predictor.from_run(run_path, **kw)
    name = Path(images_dir).resolve().stem if Path(images_dir).is_file() else None
    name = name or Path(images_dir).resolve().name or "images"
    base = _default_base(run_path, predictor.checkpoint) if out_dir is None else Path(out_dir)
    out = _output_dir(out_dir, base, name, overwrite=overwrite)

    # Images that run whole are batched by padded size; a tiled image runs alone.
    groups: dict[Any, list[Path]] = {}
    for p in paths:
        scaled = scaled_size(*sizes[p], predictor.scale)
        key = ("tiled", p) if predictor.plan(*scaled) is not None else padded_shape(*scaled)
        groups.setdefault(key, []).append(p)
    by_path: dict[Path, ImageResult] = {}
    with tqdm(total=len(paths), desc="predict", unit="img", disable=not progress) as bar:
        for group in groups.values():
            for start in range(0, len(group), batch_size):
                chunk = group[start : start + batch_size]
                rgbs = [_displayed(read_image(p, 3), orientations[p]) for p in chunk]
                for p, rgb, (prob, score) in zip(
                    chunk, rgbs, predictor.predict_batch(rgbs), strict=True
                ):
                    by_path[p] = _write_outputs(
                        predictor,
                        out,
                        p,
                        rgb,
                        prob,
                        score,
                        geometry=geometry,
                        mm_per_px=mm_per_px,
                        orientation=orientations[p],
                    )
                bar.update(len(chunk))
    report = PredictReport(
        out_dir=out,
        csv_path=out / "predictions.csv",
        checkpoint=predictor.checkpoint,
        architecture=predictor.cfg.architecture,
        device=str(predictor.device),
        threshold_seg=predictor.threshold_seg,
        threshold_dec=predictor.threshold_dec,
        validated=predictor.validated,
        results=[by_path[p] for p in paths],
        skipped=skipped,
        mm_per_px=mm_per_px,
        options=predictor.options(),
    )
    if geometry:
        report.geometry_path = _write_table(
            out / "geometry.csv", GEOMETRY_CSV_COLUMNS, report.geometry_rows()
        )
    write_csv(report.csv_path, report.rows())
    report.seconds = time.perf_counter() - t0
    atomic_write_json(
        out / "predict.json",
        {
            "weights": str(predictor.checkpoint) if predictor.checkpoint else None,
            "weights_kind": predictor.weights_kind,
            "architecture": predictor.cfg.architecture,
            "channel_order": predictor.channel_order,
            "input_scale": "1/255",
            "threshold_seg": predictor.threshold_seg,
            "threshold_dec": predictor.threshold_dec,
            "thresholds_validated": predictor.validated,
            **report.options,
            "tiled_images": sum(r.tiles > 1 for r in report.results),
            "exif_orientation": "applied (the transposition of PIL's ImageOps.exif_transpose)",
            "exif_transposed": {
                r.image.name: r.orientation for r in report.results if r.orientation != 1
            },
            "geometry": geometry,
            "mm_per_px": mm_per_px,
            "images": len(report.results),
            "seconds": report.seconds,
        },
    )
    return report


def _write_outputs(
    predictor: Predictor,
    out: Path,
    path: Path,
    rgb: np.ndarray,
    prob: np.ndarray,
    score: float,
    *,
    geometry: bool = False,
    mm_per_px: float | None = None,
    orientation: int = 1,
) -> ImageResult:
    mask = predictor.mask(prob)
    stem = path.stem
    prob_u8 = np.clip(np.rint(prob * 255.0), 0, 255).astype(np.uint8)
    cracks = measure(mask, mm_per_px)
    result = ImageResult(
        image=path,
        width=int(prob.shape[1]),
        height=int(prob.shape[0]),
        score=float(score),
        decision=predictor.decide(score),
        crack_pixels=int(mask.sum()),
        prob_path=_save_png(prob_u8, out / f"{stem}_prob.png"),
        mask_path=_save_png(mask.astype(np.uint8) * 255, out / f"{stem}_mask.png"),
        overlay_path=_save_png(_overlay(rgb, mask), out / f"{stem}_overlay.png"),
        n_cracks=len(cracks),
        crack_length_px=float(sum(c["length_px"] for c in cracks)),
        orientation=orientation,
        tiles=predictor.windows(*prob.shape),
    )
    if geometry:
        skeleton, width = skeleton_widths(mask)
        result.cracks = cracks
        result.widths_px = width[skeleton]
        result.width_path = _plot_widths(
            rgb, skeleton, width, mm_per_px, out / f"{stem}_width.png", title=path.name
        )
    return result


#: Longest side, in pixels, of the width overlay's image.
_WIDTH_PLOT_SIDE = 1600


def _plot_widths(
    rgb: np.ndarray,
    skeleton: np.ndarray,
    width_px: np.ndarray,
    mm_per_px: float | None,
    path: Path,
    *,
    title: str = "",
) -> Path:
    """``<stem>_width.png``: the image dimmed, skeleton pixels coloured by local width."""
    h, w = skeleton.shape
    unit = "mm" if mm_per_px else "px"
    values = width_px * np.float32(mm_per_px) if mm_per_px else width_px
    shrink = max(h, w) / _WIDTH_PLOT_SIDE
    if shrink > 1:  # thicken the 1-px skeleton so that it survives the downsampled figure
        size = 2 * math.ceil(shrink / 2) + 1
        values = ndi.grey_dilation(np.where(skeleton, values, 0), size=(size, size))
        skeleton = ndi.binary_dilation(skeleton, np.ones((size, size), bool))
    scale = max(shrink, 1.0)
    fig = Figure(figsize=(w / scale / 100 + 1.5, h / scale / 100 + 0.5), dpi=100)
    ax = fig.subplots()
    ax.imshow(rgb.mean(axis=-1), cmap="gray", vmin=0, vmax=2 * 255, interpolation="antialiased")
    top = float(values[skeleton].max()) if skeleton.any() else 1.0
    shown = ax.imshow(
        np.ma.masked_where(~skeleton, values),
        cmap="plasma",
        vmin=0.0,
        vmax=max(top, 1e-6),
        interpolation="nearest",
    )
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02, label=f"local crack width ({unit})")
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()
    fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    return path


def plot_width_histogram(report: PredictReport, path: str | Path, bins: int = 30) -> Path:
    """A PNG histogram of the local crack width along every skeleton pixel of the report's
    images (in mm when the report has ``mm_per_px``, else px), for a report with geometry.

    Raises:
        ValueError: the report was made without geometry.
    """
    if report.geometry_path is None:
        raise ValueError("the report has no geometry: predict with geometry=True or mm_per_px")
    parts = [r.widths_px for r in report.results if r.widths_px is not None]
    widths = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    unit = "mm" if report.mm_per_px else "px"
    if report.mm_per_px:
        widths = widths * report.mm_per_px
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    if widths.size:
        ax.hist(widths, bins=bins, color="tab:purple")
    ax.set_xlabel(f"local crack width ({unit})")
    ax.set_ylabel("skeleton pixels")
    ax.set_title(
        f"Crack width along the skeletons of {len(report)} images ({widths.size} px)", fontsize=9
    )
    ax.grid(alpha=0.3)
    path = Path(path)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    return path
