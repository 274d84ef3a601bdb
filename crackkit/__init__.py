"""crackkit: a reproducibility kit for SegDecNet crack detection and segmentation.

The package is built in layers. A module imports from its own layer or the layers below it, never
from a layer above, and no imports go round in a circle, including the lazy ones inside functions.
``tests/unit/test_layers.py`` reads the table below and holds the code to it.

Layers, from the top down:

    4 interface      cli notebook
    3 orchestration  run report pipeline predict apply export compare launch batch tensorboard
    3 orchestration  search sweep raysweep
    2 engine         autotune runtime losses checkpoint warmstart inference tiling evaluate train
    1 parts          fftconv ema model metrics data distributed geometry original_log
    0 ground         specs paths files config parameters deprecation console

- **ground**: the names and size rules (``specs``), the folders (``paths``), atomic file
  writing (``files``), the one typed run configuration (``config``), what each run parameter
  is (``parameters``), the old command-line spellings (``deprecation``) and where library
  messages go when a command runs (``console``).
- **parts**: the published networks, the metrics, data sets and loaders (with augmentation and
  the choice of segmented images of mixed supervision), the process group, crack geometry (length
  and width) from a mask, and the run log's lines in the seed fork's format.
- **engine**: speed switches settled by measurement and cached per machine, device and
  precision switches, a config turned into a device-ready model, the
  loss, checkpoint files, starting weights of a warm start, the one inference path and its tiled
  form, evaluation of a split, the training loop.
- **orchestration**: the :class:`crackkit.run.Run` that owns a run folder, the pipeline's
  steps, reports, a trained model applied to images of any size and to folders of photos, ONNX
  export, comparisons, search spaces and sweeps (here or on a Ray cluster), the torchrun
  launcher, the papermill batch driver, and the TensorBoard event files of a run.
- **interface**: the ``crackkit`` command and the notebooks' parameter guard.

``docs/ARCHITECTURE.md`` follows one parameter through these layers.
"""

from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("crackkit")  # the one source: pyproject.toml's version
except _PackageNotFoundError:  # imported from a clone that was never installed
    __version__ = "0+unknown"
