"""Bad input gets a clear error: bad run parameters, damaged checkpoints, a non-finite loss."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from crackkit.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from crackkit.cli import main
from crackkit.config import ConfigError, make_config
from crackkit.losses import SegDecLoss
from crackkit.run import run_logger
from crackkit.runtime import Placement
from crackkit.specs import CHECKPOINT_FORMAT
from crackkit.train import NonFiniteLossError, train_one_epoch

BAD_PARAMETERS = [
    (["-p", "lrr", "0.1"], "unknown parameter 'lrr'; valid parameters: dataset, input_channels"),
    (["-p", "epochs", "two"], "parameter 'epochs' must be of type int, got 'two' (str)"),
    (["-p", "epochs", "1.5"], "parameter 'epochs' must be of type int, got '1.5' (str)"),
    (["-p", "augmentation", "maybe"], "parameter 'augmentation' must be of type bool"),
    (["-p", "lr", "0"], "parameter 'lr' got 0.0; it must be > 0.0"),
    (["-p", "lr", "-0.001"], "parameter 'lr' got -0.001; it must be > 0.0"),
    (["-p", "epochs", "0"], "parameter 'epochs' got 0; it must be >= 1"),
    (["-p", "delta_cls_loss", "-1"], "parameter 'delta_cls_loss' got -1.0; it must be >= 0.0"),
    (["-p", "momentum", "1.5"], "parameter 'momentum' got 1.5; it must be <= 1.0"),
    (
        ["-p", "input_height", "30"],
        "SegDecNet cannot take a 30x128 input: sides must be multiples of 8 (three 2x2 "
        "poolings); got input_height=30. The nearest valid size is input_height=64, "
        "input_width=128",
    ),
    (
        ["-p", "architecture", "unet"],
        "parameter 'architecture' got 'unet'; allowed values: 'segdecnet', 'segdecnet-up', "
        "'segdecnet++'",
    ),
    (
        ["-p", "optimizer", "rmsprop"],
        "parameter 'optimizer' got 'rmsprop'; allowed values: 'adam', 'sgd'",
    ),
    (["-p", "validate", "false", "-p", "validate_on_test", "true"], "needs validate=True"),
    (
        ["--preset", "huge"],
        "unknown preset 'huge'; available presets: synthetic, tiny, crack500, cfd",
    ),
]


@pytest.mark.parametrize(("args", "message"), BAD_PARAMETERS)
def test_cli_refuses_bad_parameters_before_creating_the_run(tmp_path, capsys, args, message):
    """crackkit run exits 2 with a message naming the parameter; no run folder is made."""
    run_dir = tmp_path / "run"
    argv = ["run", "--run", str(run_dir), *args]
    if "--preset" not in args:
        argv += ["--preset", "tiny"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("crackkit: error: ") and message in err
    assert not run_dir.exists()


def test_make_config_raises_config_error_naming_the_parameter():
    """The library refuses the same values with a ConfigError naming the field."""
    with pytest.raises(ConfigError, match="parameter 'epochs' got 0"):
        make_config({"epochs": 0})
    with pytest.raises(ConfigError, match="parameter 'lr' must be of type float, got 'fast'"):
        make_config({"lr": "fast"})


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--resume", "{missing}"], 2, "it holds no config.json"),
        (["--resume", "{run}", "-p", "lr", "0.1"], 2, "--resume continues a run with its recorded"),
    ],
)
def test_cli_resume_refuses_bad_requests(tmp_path, capsys, args, code, message):
    """--resume needs a run folder and takes no new parameters."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    fill = {"{missing}": str(tmp_path / "missing"), "{run}": str(tmp_path / "run")}
    assert main(["run", *[fill.get(a, a) for a in args]]) == code
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["config.json"]


# ---------------------------------------------------------------------------------------------
# Damaged and foreign checkpoints


def _tiny_config() -> dict:
    return make_config(preset="tiny").to_dict()


def _write_case(path, case: str) -> None:
    if case == "missing":
        return
    if case == "empty":
        path.write_bytes(b"")
    elif case == "garbage":
        path.write_bytes(b"\x00\x01not a checkpoint" * 20)
    elif case == "truncated":
        save_checkpoint(path, {"model": {"w": torch.zeros(4096)}, "config": _tiny_config()})
        path.write_bytes(path.read_bytes()[:2000])
    elif case == "plain pickle":
        path.write_bytes(pickle.dumps({"model": {}, "config": _tiny_config()}))
    elif case == "not a dict":
        torch.save([1, 2, 3], path)
    elif case == "no config":
        torch.save({"model": {}}, path)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no checkpoint at"),
        ("empty", "is damaged or not a crackkit checkpoint"),
        ("garbage", "is damaged or not a crackkit checkpoint"),
        ("truncated", "is damaged or not a crackkit checkpoint"),
        ("plain pickle", "is damaged or not a crackkit checkpoint"),
        ("not a dict", "is not a crackkit checkpoint (no model/config inside)"),
        ("no config", "is not a crackkit checkpoint (no model/config inside)"),
    ],
)
@pytest.mark.parametrize("loader", [load_checkpoint, load_model])
def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path, loader, case, message):
    """load_checkpoint and load_model raise CheckpointError naming the file."""
    path = tmp_path / "last.pt"
    _write_case(path, case)
    with pytest.raises(CheckpointError) as err:
        loader(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    """Asking for segdecnet++ from a segdecnet checkpoint names both architectures."""
    path = tmp_path / "best.pt"
    cfg = _tiny_config() | {"architecture": "segdecnet"}
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "model": {}, "config": cfg})
    with pytest.raises(CheckpointError, match=r"holds a 'segdecnet' model, but architecture"):
        load_checkpoint(path, architecture="segdecnet++")


def test_weights_that_do_not_fit_the_recorded_architecture_are_refused(tmp_path):
    """load_model refuses weights that do not fit the architecture its config names."""
    path = tmp_path / "best.pt"
    state = {"model": {"conv.weight": torch.zeros(1)}, "config": _tiny_config()}
    save_checkpoint(path, {"format": CHECKPOINT_FORMAT} | state)
    with pytest.raises(CheckpointError, match=r"does not fit a segdecnet\+\+ model"):
        load_model(path)


@pytest.mark.parametrize("architecture", ["segdecnet", "segdecnet++"])
def test_checkpoint_of_crackkit_0_1_is_refused_saying_what_changed(tmp_path, architecture):
    """A format-1 checkpoint (no version) is never loaded: the message says what changed."""
    path = tmp_path / "best.pt"
    cfg = _tiny_config() | {"architecture": architecture}
    model = {"encoder.stage1.0.weight": torch.zeros(32, 3, 5, 5)}
    save_checkpoint(path, {"model": model, "config": cfg})
    for loader in (load_checkpoint, load_model):
        with pytest.raises(CheckpointError, match="format 1") as err:
            loader(path)
        assert "sqrt(std + eps)" in str(err.value) and "not SegDecNet++" in str(err.value)


# ---------------------------------------------------------------------------------------------
# A non-finite loss


class _TinyNet(nn.Module):
    """(N, 3, H, W) -> decision (N, 1) and segmentation (N, 1, H, W)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1)

    def forward(self, x):
        seg = self.conv(x)
        return seg.mean(dim=(2, 3)), seg


def _batches(n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        {
            "image": torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=g),
            "mask": (torch.rand(2, 1, 8, 8, generator=g) > 0.8).float(),
            "label": torch.tensor([1.0, 0.0]),
        }
        for _ in range(n)
    ]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("batch", [1, 3])
def test_non_finite_loss_names_the_epoch_and_batch(monkeypatch, bad, batch):
    """A NaN or infinite loss raises NonFiniteLossError naming the epoch and the batch."""
    loss_fn = SegDecLoss(epochs=9, delta=0.5, dynamic=False)
    calls = []

    def spoiled(*args, **kwargs):
        calls.append(1)
        out = loss_fn(*args, **kwargs)
        return out | {"loss": out["loss"] + bad} if len(calls) == batch else out

    model = _TinyNet()
    with pytest.raises(NonFiniteLossError) as err:
        train_one_epoch(
            model,
            spoiled,
            _batches(3),
            torch.optim.SGD(model.parameters(), lr=0.1),
            epoch=3,
            placement=Placement(torch.device("cpu"), None, False),
            progress=False,
            desc="epoch 4/9",
        )
    assert f"the training loss became {bad} in epoch 4/9, batch {batch} of 3" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Logs


def test_run_logs_of_same_named_folders_stay_apart(tmp_path):
    """Two run folders with the same name each get only their own log lines."""
    first, second = tmp_path / "a" / "run", tmp_path / "b" / "run"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    run_logger(first).info("line of the first run")
    run_logger(second).info("line of the second run")
    run_logger(first).info("again the first")
    assert (first / "run.log").read_text().count("\n") == 2
    assert "second" not in (first / "run.log").read_text()
    assert "first" not in (second / "run.log").read_text()
