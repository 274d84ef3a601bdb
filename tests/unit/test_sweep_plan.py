"""Sweep planning: grid expansion, folder names, validation before anything runs, skip/resume."""

from __future__ import annotations

import json

import pytest

from crackkit.cli import build_parser, main
from crackkit.config import ConfigError, make_config, save_config
from crackkit.run import RunDirError, config_from_arguments
from crackkit.sweep import (
    expand_grid,
    parse_grid,
    parse_seeds,
    plan_sweep,
    run_command,
    run_name,
    run_sweep,
)


def test_parse_grid_coerces_values():
    """Comma-separated values become the fields' types, in the given order."""
    grid = parse_grid([("lr", "0.001, 1e-4"), ("augmentation", "True,false"), ("epochs", "1")])
    assert grid == {"lr": [0.001, 0.0001], "augmentation": [True, False], "epochs": [1]}
    assert isinstance(grid["epochs"][0], int)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("lrr", "1")], "unknown parameter 'lrr'"),
        ([("lr", "0.1,fast")], "parameter 'lr' must be of type float"),
        ([("lr", "0.1,,0.2")], "parameter 'lr' has an empty value"),
        ([("lr", "0.001,1e-3")], "parameter 'lr' lists the value 0.001 twice"),
        ([("lr", "0.1"), ("lr", "0.2")], "parameter 'lr' is given twice"),
        ([("seed", "1,2")], "--seeds"),
    ],
)
def test_parse_grid_refuses(pairs, message):
    """Bad names and values stop the sweep with a message naming the parameter."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_grid(pairs)


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("3", [0, 1, 2]), ("1", [0]), ("0,5,7", [0, 5, 7]), ("7,", [7]), (" 2 , 4 ", [2, 4])],
)
def test_parse_seeds(text, seeds):
    """A count gives 0..N-1; a comma-separated list is taken as it is."""
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["0", "-2", "x", "1,1", "1,-3", ","])
def test_parse_seeds_refuses(text):
    """A count below 1, a negative or repeated seed, or text that is no number."""
    with pytest.raises(ConfigError):
        parse_seeds(text)


def test_parse_seeds_default_is_the_config_seed():
    assert parse_seeds(None, default=4) == [4]


def test_expand_grid_is_the_cartesian_product():
    """Every combination once, the last parameter varying fastest."""
    combos = expand_grid({"lr": [0.1, 0.2], "augmentation": [True, False], "dilate": [1, 3, 5]})
    assert len(combos) == 12
    assert combos[:3] == [
        {"lr": 0.1, "augmentation": True, "dilate": 1},
        {"lr": 0.1, "augmentation": True, "dilate": 3},
        {"lr": 0.1, "augmentation": True, "dilate": 5},
    ]
    assert len({tuple(c.items()) for c in combos}) == 12
    assert expand_grid({}) == [{}]


def test_run_names_are_safe():
    """Names are name=value pairs and the seed; unsafe characters become '_'; long names hashed."""
    assert run_name({"lr": 0.001, "augmentation": True}, 2) == "lr=0.001-augmentation=True-seed2"
    assert run_name({}, 0) == "seed0"
    assert run_name({"dataset": "/data/my set/x"}, 1) == "dataset=_data_my_set_x-seed1"
    long_a = run_name({"dataset": "/d/" + "a" * 300}, 0)
    long_b = run_name({"dataset": "/d/" + "a" * 299 + "b"}, 0)
    assert len(long_a) <= 150 and long_a != long_b


def test_plan_names_and_configs(tmp_path):
    """2 x 2 values x 2 seeds = 8 runs; a single-valued parameter is fixed and not in the name."""
    grid = {"lr": [0.001, 0.0001], "augmentation": [True, False], "epochs": [1]}
    sweep = plan_sweep(tmp_path / "sw", grid, [0, 1], preset="tiny")
    assert len(sweep.runs) == 8
    assert sweep.grid == {"lr": [0.001, 0.0001], "augmentation": [True, False]}
    assert sweep.fixed == {"epochs": 1}
    names = [r.name for r in sweep.runs]
    assert names[:3] == [
        "lr=0.001-augmentation=True-seed0",
        "lr=0.001-augmentation=True-seed1",
        "lr=0.001-augmentation=False-seed0",
    ]
    run = sweep.runs[5]
    assert run.name == "lr=0.0001-augmentation=True-seed1"
    assert (run.config.lr, run.config.augmentation, run.config.seed) == (0.0001, True, 1)
    assert run.config == make_config(
        {"lr": 0.0001, "augmentation": True, "seed": 1, "epochs": 1}, preset="tiny"
    )
    assert {r.action for r in sweep.runs} == {"start"}
    assert not (tmp_path / "sw").exists(), "planning writes nothing"


@pytest.mark.parametrize(
    ("grid", "fixed", "message"),
    [
        ({"lr": [0.1, -1.0]}, {}, "parameter 'lr' got -1.0"),
        ({"optimizer": ["adam", "rmsprop"]}, {}, "allowed values: 'adam', 'sgd'"),
        ({"validate": [True, False]}, {"validate_on_test": True}, "validate=False: "),
        ({"input_height": [64, 68]}, {}, "input_height=68: "),
        ({"lr": [0.1, 0.2]}, {"lr": 0.3}, "parameter\\(s\\) 'lr' given twice"),
    ],
)
def test_plan_refuses_bad_values_before_running(tmp_path, grid, fixed, message):
    """Each value is validated through RunConfig; the error names the parameter."""
    with pytest.raises(ConfigError, match=message):
        plan_sweep(tmp_path / "sw", grid, [0], preset="tiny", fixed=fixed)
    assert not (tmp_path / "sw").exists()


def _finished(run_dir, cfg, *, metrics=True, checkpoint=True):
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.json")
    if checkpoint:
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    if metrics:
        (run_dir / "metrics.json").write_text("{}")


def test_plan_skips_resumes_and_restarts(tmp_path):
    """Finished runs are skipped, checkpointed ones resumed, started ones without one restarted."""
    parent = tmp_path / "sw"
    first = plan_sweep(parent, {"lr": [0.1, 0.2]}, [0, 1], preset="tiny")
    cfgs = {r.name: r.config for r in first.runs}
    _finished(parent / "lr=0.1-seed0", cfgs["lr=0.1-seed0"])
    _finished(parent / "lr=0.1-seed1", cfgs["lr=0.1-seed1"], metrics=False)
    _finished(parent / "lr=0.2-seed0", cfgs["lr=0.2-seed0"], metrics=False, checkpoint=False)
    actions = {
        r.name: r.action for r in plan_sweep(parent, {"lr": [0.1, 0.2]}, [0, 1], preset="tiny").runs
    }
    assert actions == {
        "lr=0.1-seed0": "skip",
        "lr=0.1-seed1": "resume",
        "lr=0.2-seed0": "restart",
        "lr=0.2-seed1": "start",
    }


def test_plan_refuses_a_folder_made_with_other_parameters(tmp_path):
    """A folder of the same name holding another configuration stops the sweep at planning."""
    parent = tmp_path / "sw"
    _finished(parent / "lr=0.1-seed0", make_config({"lr": 0.1, "epochs": 5}, preset="tiny"))
    with pytest.raises(RunDirError, match="lr=0.1-seed0: recorded parameters differ in epochs"):
        plan_sweep(parent, {"lr": [0.1, 0.2]}, [0], preset="tiny", fixed={"epochs": 1})


def test_run_command_round_trips_through_the_cli(tmp_path):
    """The child's `crackkit run` arguments rebuild exactly the planned configuration."""
    sweep = plan_sweep(tmp_path / "sw", {"lr": [1 / 3, 1e-5]}, [3], preset="tiny")
    parser = build_parser()
    for run in sweep.runs:
        cmd = run_command(run)
        assert cmd[1:4] == ["-m", "crackkit.cli", "run"]
        args = parser.parse_args(cmd[3:])
        assert args.run_dir == str(run.run_dir) and not args.overwrite
        assert config_from_arguments(args) == run.config
    run.action = "resume"
    assert run_command(run)[-3:] == ["--resume", "--run", str(run.run_dir)]
    run.action = "restart"
    assert "--overwrite" in run_command(run)


def _fake_runner(fail):
    """Writes a finished run (or fails) instead of executing the notebooks."""

    def runner(run, log_path):
        log_path.write_text(f"fake {run.name}\n")
        if run.name in fail:
            run.run_dir.mkdir(parents=True)
            save_config(run.config, run.run_dir / "config.json")
            return 3
        _finished(run.run_dir, run.config, checkpoint=False)
        (run.run_dir / "metrics.json").write_text(
            json.dumps({"decision": {"f1": 0.5 + run.config.lr}, "split": "test"})
        )
        return 0

    return runner


@pytest.mark.parametrize("jobs", [1, 2])
def test_failing_run_is_reported_and_the_sweep_goes_on(tmp_path, jobs):
    """One failing run leaves the others to finish; status per run in sweep.json; exit code 1."""
    parent = tmp_path / "sw"
    sweep = plan_sweep(parent, {"lr": [0.1, 0.2]}, [0, 1], preset="tiny")
    lines = []
    result = run_sweep(sweep, jobs=jobs, runner=_fake_runner({"lr=0.1-seed1"}), echo=lines.append)
    assert result.exit_code == 1
    record = json.loads((parent / "sweep.json").read_text())
    status = {r["name"]: r["status"] for r in record["runs"]}
    assert status == {
        "lr=0.1-seed0": "finished",
        "lr=0.1-seed1": "failed",
        "lr=0.2-seed0": "finished",
        "lr=0.2-seed1": "finished",
    }
    assert record["grid"] == {"lr": [0.1, 0.2]} and record["seeds"] == [0, 1]
    assert record["invocations"][-1]["failed"] == 1
    assert any(line.startswith("[sweep] FAILED lr=0.1-seed1 (exit status 3)") for line in lines)
    assert "`lr=0.1-seed1`" in (parent / "COMPARE.md").read_text().split("## Unfinished runs")[1]

    again = plan_sweep(parent, {"lr": [0.1, 0.2]}, [0, 1], preset="tiny")
    assert [r.action for r in again.runs] == ["skip", "restart", "skip", "skip"]
    lines.clear()
    result = run_sweep(again, jobs=jobs, runner=_fake_runner(set()), echo=lines.append)
    assert result.exit_code == 0
    assert sum("skipped (finished)" in line for line in lines) == 3
    assert len(json.loads((parent / "sweep.json").read_text())["invocations"]) == 2


def test_cli_bad_value_exits_2_and_creates_nothing(tmp_path, capsys):
    """crackkit sweep with a bad value stops before any folder is made."""
    parent = tmp_path / "sw"
    code = main(["sweep", "--preset", "tiny", "--sweep-dir", str(parent), "-p", "lr", "0.1,-2"])
    assert code == 2
    assert "parameter 'lr' got -2.0" in capsys.readouterr().err
    assert not parent.exists()


def test_cli_dry_run_prints_the_plan(tmp_path, capsys):
    """--dry-run lists every run and its action and writes nothing."""
    parent = tmp_path / "sw"
    argv = ["sweep", "--preset", "tiny", "--sweep-dir", str(parent), "-p", "dilate", "1,3"]
    assert main(argv + ["--seeds", "0,5", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 runs" in out and "start    dilate=3-seed5" in out
    assert not parent.exists()


def test_interrupt_marks_runs_and_is_recorded(tmp_path):
    """Ctrl-C during a run marks it and the pending ones 'interrupted' in sweep.json."""
    parent = tmp_path / "sw"
    sweep = plan_sweep(parent, {"lr": [0.1, 0.2]}, [0], preset="tiny")

    def runner(run, log_path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, jobs=1, runner=runner, echo=lambda line: None)
    record = json.loads((parent / "sweep.json").read_text())
    assert [r["status"] for r in record["runs"]] == ["interrupted", "interrupted"]
    assert record["invocations"][-1]["interrupted"] == 2
    assert plan_sweep(parent, {"lr": [0.1, 0.2]}, [0], preset="tiny").counts()["start"] == 2


def test_cli_interrupt_exits_130(tmp_path, monkeypatch, capsys):
    """crackkit sweep stopped by Ctrl-C says how to continue and exits 130."""
    import crackkit.sweep

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(crackkit.sweep, "run_sweep", interrupted)
    code = main(["sweep", "--preset", "tiny", "--sweep-dir", str(tmp_path / "sw")])
    assert code == 130
    assert "run the same command again" in capsys.readouterr().err
