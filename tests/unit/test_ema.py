"""The weight average (ema_decay): its recurrence by hand, and a run that validates, saves and
resumes it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crackkit.checkpoint import Checkpoints, load_checkpoint
from crackkit.config import ConfigError, deviations, make_config
from crackkit.data.dataset import load_splits
from crackkit.ema import WeightEMA, ema_decay_at
from crackkit.train import train


@pytest.mark.parametrize(
    ("step", "expected"),
    [(1, 2 / 11), (2, 3 / 12), (80, 0.9), (1000, 0.9)],  # (1 + t) / (10 + t) until it passes 0.9
)
def test_decay_is_warmed_up(step, expected):
    assert ema_decay_at(0.9, step) == pytest.approx(expected)


def test_average_follows_the_recurrence_by_hand():
    """Weights 1, 2, 3 after three steps, decay 0.5 (warmed up to 2/11, 3/12, 4/13)."""
    source = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        source.weight.fill_(0.0)
    ema = WeightEMA(source, 0.5)
    shadow = 0.0
    for t, value in enumerate((1.0, 2.0, 3.0), start=1):
        with torch.no_grad():
            source.weight.fill_(value)
        ema.update()
        d = min(0.5, (1 + t) / (10 + t))
        shadow = d * shadow + (1 - d) * value
    assert float(ema.module.weight) == pytest.approx(shadow, rel=1e-6)
    assert not ema.module.weight.requires_grad
    assert ema.steps == 3


def test_ema_is_a_named_deviation_off_by_default():
    assert make_config().ema_decay == 0.0
    assert "ema_decay" in deviations(make_config({"ema_decay": 0.9}))
    for preset in ("crack500", "synthetic", "cfd"):
        assert "ema_decay" not in deviations(make_config(preset=preset))
    with pytest.raises(ConfigError, match="ema_decay"):
        make_config({"ema_decay": 1.0})


def _train(cfg, folder, run, resume=False):
    return train(
        cfg,
        load_splits(folder),
        Checkpoints(run / "checkpoints"),
        history_path=run / "history.csv",
        resume=resume,
        progress=False,
        log=lambda _: None,
    )


def test_a_run_saves_the_average_and_resumes_it_exactly(bar_folder, tmp_path):
    base = {
        "dataset": str(bar_folder),
        "augmentation": False,
        "ema_decay": 0.6,
        "use_best_model": False,
    }
    full = _train(make_config(base | {"epochs": 2}, preset="tiny"), bar_folder, tmp_path / "full")
    last = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    assert last["ema"]["steps"] == 4  # 4 training images at batch 2, two epochs
    trained, averaged = last["train_model"], last["model"]
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained)
    for k, v in full.model.state_dict().items():  # the run's model is the average
        assert torch.equal(v, averaged[k]), k

    cfg = make_config(base | {"epochs": 2}, preset="tiny")
    run = tmp_path / "split"
    _train(make_config(base | {"epochs": 1}, preset="tiny"), bar_folder, run)
    # resuming needs the same run parameters: rewrite the stored epochs of the 1-epoch run
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    state["config"]["epochs"] = 2
    Checkpoints(run / "checkpoints").save("last", state)
    resumed = _train(cfg, bar_folder, run, resume=True)
    for k, v in resumed.model.state_dict().items():
        assert torch.allclose(v, averaged[k], rtol=0, atol=1e-6), k
