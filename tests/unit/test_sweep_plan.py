"""Sweep planning: grid expansion, folder names, validation before anything runs, skip/resume."""

from __future__ import annotations

import json
import os
import sys

import pytest

from crackkit.cli import build_parser, main
from crackkit.config import ConfigError, coerce_value, make_config, save_config
from crackkit.run import RunDirError, config_from_arguments
from crackkit.search import draw_points, parse_space
from crackkit.sweep import (
    LocalEngine,
    SweepBook,
    describe_plan,
    expand_grid,
    parse_grid,
    parse_seeds,
    plan_sweep,
    run_command,
    run_name,
    run_sweep,
    threads_per_run,
    value_text,
    visible_gpus,
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


# Search spaces, value texts, engines


def test_plan_combines_grid_points_and_seeds(tmp_path):
    """2 grid values x 3 drawn points x 2 seeds = 12 runs; each name holds its drawn value."""
    space = parse_space([("lr", "loguniform:1e-5:1e-2")])
    sweep = plan_sweep(
        tmp_path / "sw", {"dilate": [1, 3]}, [0, 1], preset="tiny", space=space, num_samples=3
    )
    assert len(sweep.runs) == 12 and sweep.points == draw_points(space, 3, 0)
    lrs = [p["lr"] for p in sweep.points]
    assert [r.name for r in sweep.runs[:3]] == [
        f"dilate=1-lr={lrs[0]!r}-seed0",
        f"dilate=1-lr={lrs[0]!r}-seed1",
        f"dilate=1-lr={lrs[1]!r}-seed0",
    ]
    assert {(r.config.dilate, r.config.lr, r.seed) for r in sweep.runs} == {
        (d, lr, s) for d in (1, 3) for lr in lrs for s in (0, 1)
    }
    with pytest.raises(ConfigError, match="'lr' given twice"):
        plan_sweep(tmp_path / "sw", {"lr": [0.1, 0.2]}, [0], preset="tiny", space=space)


def test_sweep_json_records_the_search(tmp_path):
    """sweep.json keeps the space, the seed and the drawn points, so a restart draws the same."""
    space = parse_space([("lr", "loguniform:1e-5:1e-2")])
    sweep = plan_sweep(tmp_path / "sw", None, [0], preset="tiny", space=space, num_samples=2)
    run_sweep(sweep, runner=_fake_runner(set()), compare=False, echo=lambda line: None)
    record = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert record["search"] == {
        "space": {"lr": "loguniform:1e-05:0.01"},
        "num_samples": 2,
        "search_seed": 0,
        "points": sweep.points,
    }
    again = plan_sweep(tmp_path / "sw", None, [0], preset="tiny", space=space, num_samples=3)
    assert [r.action for r in again.runs] == ["skip", "skip", "start"]


@pytest.mark.parametrize("preset", [None, "tiny", "crack500"])
def test_value_text_round_trips_every_field(preset):
    """Every value a sweep writes on a child's command line reads back as itself."""
    cfg = make_config(preset=preset)
    for name, value in cfg.to_dict().items():
        assert coerce_value(name, value_text(value)) == value, name
    assert value_text(None) == "all" and value_text(0.1) == "0.1" and value_text(True) == "True"


def test_stopped_runs_are_kept_when_the_sweep_stops_early(tmp_path):
    """A folder with stopped.json is kept ('stopped') by a sweep that stops early, resumed by
    one that does not; starting the early-stopping sweep again reports it and runs nothing."""
    parent = tmp_path / "sw"
    first = plan_sweep(parent, {"lr": [0.1, 0.2]}, [0], preset="tiny")
    run = first.runs[0]
    _finished(run.run_dir, run.config, metrics=False)
    (run.run_dir / "stopped.json").write_text('{"by": "ASHA", "epoch": 1}')
    keep = plan_sweep(parent, {"lr": [0.1, 0.2]}, [0], preset="tiny", keep_stopped=True)
    assert [r.action for r in keep.runs] == ["stopped", "start"]
    assert "1 stopped early (kept)" in describe_plan(keep)
    resume = plan_sweep(parent, {"lr": [0.1, 0.2]}, [0], preset="tiny")
    assert [r.action for r in resume.runs] == ["resume", "start"]
    lines = []
    result = run_sweep(keep, runner=_fake_runner(set()), compare=False, echo=lines.append)
    assert [r.name for r in result.stopped] == ["lr=0.1-seed0"] and result.exit_code == 0
    assert "[sweep] skipped (stopped early before): lr=0.1-seed0" in lines
    assert lines[-1] == "[sweep] done: 1 finished, 0 skipped, 0 failed, 1 stopped early"
    record = json.loads((parent / "sweep.json").read_text())
    assert record["runs"][0]["status"] == "stopped"
    assert record["runs"][0]["stopped"] == {"by": "ASHA", "epoch": 1}


def test_book_records_an_early_stop(tmp_path):
    """stopped_early writes RUN/stopped.json and the run's status; ended keeps it 'stopped'."""
    sweep = plan_sweep(tmp_path / "sw", {"lr": [0.1, 0.2]}, [0], preset="tiny")
    sweep.parent.mkdir()
    book = SweepBook(sweep, {"name": "test"}, echo=lambda line: None)
    run = book.begin()[0]
    run.run_dir.mkdir()
    book.started(run)
    book.stopped_early(run, {"by": "ASHA", "epoch": 2, "metric": "val_f1_2px", "value": 0.25})
    book.ended(run, -2)
    written = json.loads((run.run_dir / "stopped.json").read_text())
    assert written["epoch"] == 2 and written["value"] == 0.25 and "time" in written
    assert run.status == "stopped" and run.returncode == -2
    assert book.close()["stopped"] == 1


def test_threads_per_run():
    """--cpus-per-run wins; else the cores shared by --jobs; else (Ray without --jobs) 1."""
    cores = os.cpu_count()
    assert threads_per_run(3, 5) == 3
    assert threads_per_run(None, 1) == cores
    assert threads_per_run(None, cores * 4) == 1
    assert threads_per_run(None, None) == 1
    for bad in ((0, None), (None, 0)):
        with pytest.raises(ConfigError, match="must be at least 1"):
            threads_per_run(*bad)


def test_visible_gpus(monkeypatch):
    """CUDA_VISIBLE_DEVICES lists the GPUs when it is set; empty means none."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5,GPU-abc")
    assert visible_gpus() == ["3", "5", "GPU-abc"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


# A child standing in for `crackkit run`: it records what it was given and finishes its folder.
_CHILD = (
    "import json, os, pathlib, sys, time\n"
    "d = pathlib.Path(sys.argv[1]); d.mkdir(parents=True, exist_ok=True)\n"
    "t0 = time.time(); time.sleep(float(sys.argv[2]))\n"
    "keys = ('CUDA_VISIBLE_DEVICES', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'CRACKKIT_MARK')\n"
    "env = {k: os.environ.get(k) for k in keys}\n"
    "(d / 'metrics.json').write_text(json.dumps({'env': env, 'span': [t0, time.time()]}))\n"
)


def _child_runs(monkeypatch, tmp_path, n, jobs, gpus, sleep_s=0.0, **engine):
    """Run n planned runs through the local engine's real child processes; their records."""
    import crackkit.sweep

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", gpus)
    monkeypatch.setenv("CRACKKIT_MARK", "forwarded")
    monkeypatch.setattr(
        crackkit.sweep,
        "run_command",
        lambda run: [sys.executable, "-c", _CHILD, str(run.run_dir), str(sleep_s)],
    )
    sweep = plan_sweep(tmp_path / "sw", {"dilate": list(range(n))}, [0], preset="tiny")
    engine = LocalEngine(jobs, **engine)
    result = run_sweep(sweep, engine=engine, compare=False, echo=lambda line: None)
    assert result.exit_code == 0
    return [json.loads((r.run_dir / "metrics.json").read_text()) for r in sweep.runs], sweep


def test_local_engine_hands_out_gpus_round_robin(monkeypatch, tmp_path):
    """One run at a time on GPUs 3, 5, 7: the runs get 3, 5, 7, 3, each alone, with all the
    cores as threads; sweep.json records both."""
    records, sweep = _child_runs(monkeypatch, tmp_path, 4, 1, "3,5,7")
    assert [r["env"]["CUDA_VISIBLE_DEVICES"] for r in records] == ["3", "5", "7", "3"]
    threads = str(os.cpu_count())
    assert {(r["env"]["OMP_NUM_THREADS"], r["env"]["MKL_NUM_THREADS"]) for r in records} == {
        (threads, threads)
    }
    assert {r["env"]["CRACKKIT_MARK"] for r in records} == {"forwarded"}
    runs = json.loads((sweep.parent / "sweep.json").read_text())["runs"]
    assert [r["cuda_visible_devices"] for r in runs] == ["3", "5", "7", "3"]
    assert {r["threads"] for r in runs} == {os.cpu_count()}
    log = (sweep.parent / "logs" / f"{sweep.runs[1].name}.log").read_text()
    assert f"{threads} thread(s), CUDA_VISIBLE_DEVICES='5'" in log


def test_local_engine_never_shares_a_gpu_while_one_is_free(monkeypatch, tmp_path):
    """Three at a time on three GPUs: runs that overlap in time are on different GPUs."""
    records, _ = _child_runs(monkeypatch, tmp_path, 6, 3, "0,1,2", sleep_s=1.0, cpus_per_run=1)
    for a in records:
        for b in records:
            overlap = a is not b and a["span"][0] < b["span"][1] and b["span"][0] < a["span"][1]
            if overlap:
                assert a["env"]["CUDA_VISIBLE_DEVICES"] != b["env"]["CUDA_VISIBLE_DEVICES"]
    assert {r["env"]["OMP_NUM_THREADS"] for r in records} == {"1"}
    assert {r["env"]["CUDA_VISIBLE_DEVICES"] for r in records} == {"0", "1", "2"}


def test_local_engine_without_gpus(monkeypatch, tmp_path):
    """No visible GPU: runs get CUDA_VISIBLE_DEVICES=''; --gpus-per-run 0 hides the GPUs."""
    records, _ = _child_runs(monkeypatch, tmp_path, 1, 1, "")
    assert records[0]["env"]["CUDA_VISIBLE_DEVICES"] == ""
    records, _ = _child_runs(monkeypatch, tmp_path / "b", 1, 1, "0,1", gpus_per_run=0)
    assert records[0]["env"]["CUDA_VISIBLE_DEVICES"] == ""
    records, _ = _child_runs(monkeypatch, tmp_path / "c", 2, 1, "0,1", gpus_per_run=2)
    assert [r["env"]["CUDA_VISIBLE_DEVICES"] for r in records] == ["0,1", "0,1"]


def test_local_engine_refuses_more_gpus_than_visible(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with pytest.raises(ConfigError, match="--gpus-per-run 2: this machine shows 1 GPU"):
        LocalEngine(1, gpus_per_run=2)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--address", "10.0.0.1:6379"], "--address needs --engine ray"),
        (["--early-stop", "asha"], "--early-stop needs --engine ray"),
        (["--engine", "ray", "--grace-period", "2"], "set --early-stop asha"),
        (["--engine", "ray", "--early-stop", "asha", "--reduction-factor", "1"], "at least 2"),
        (["--jobs", "0"], "--jobs must be at least 1"),
        (["--cpus-per-run", "0"], "--cpus-per-run must be at least 1"),
        (["--sample", "lr", "loguniform:0:1"], "log-uniform LOW must be above 0"),
    ],
)
def test_cli_engine_options_are_checked(tmp_path, capsys, extra, message):
    """Engine options that do not fit exit 2 with one line, before any folder is made."""
    parent = tmp_path / "sw"
    code = main(["sweep", "--preset", "tiny", "--sweep-dir", str(parent), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not parent.exists()


def test_cli_says_when_ray_is_missing(tmp_path, monkeypatch, capsys):
    """--engine ray without Ray installed: one line naming the extra to install, exit 2."""
    monkeypatch.setitem(sys.modules, "ray", None)
    parent = tmp_path / "sw"
    code = main(["sweep", "--preset", "tiny", "--sweep-dir", str(parent), "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == (
        "crackkit: error: --engine ray needs Ray Tune, which is not installed: "
        "pip install 'crackkit[ray]' (or pip install 'ray[tune]')\n"
    )
    assert not parent.exists()


def test_ray_is_an_extra_that_the_tests_install():
    """crackkit[ray] is Ray Tune; the test extra (make test, CI) has it too, so CI runs the Ray
    engine's tests."""
    import tomllib

    from crackkit.paths import ROOT

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert extras["ray"] == ["ray[tune]>=2.58,<3"]
    assert any(t.startswith("crackkit[") and "ray" in t for t in extras["test"])


def test_ray_engine_checks_early_stopping_before_anything_runs(tmp_path):
    """ASHA needs validation scores and an epoch before the last to stop at; a refused sweep
    writes nothing (no Ray is started: the checks come first)."""
    from crackkit.raysweep import Asha, RayEngine

    engine = RayEngine("127.0.0.1:1", early_stop=Asha(grace_period=2, reduction_factor=2))
    sweep = plan_sweep(tmp_path / "sw", {"lr": [0.1, 0.2]}, [0], preset="tiny")  # epochs 2
    with pytest.raises(ConfigError, match="--grace-period 2: give an epoch from 1 to 1"):
        run_sweep(sweep, engine=engine)
    sweep = plan_sweep(tmp_path / "sw", {"lr": [0.1, 0.2]}, [0], fixed={"validate": False})
    with pytest.raises(ConfigError, match="these runs have validate=False: lr=0.1-seed0"):
        run_sweep(sweep, engine=RayEngine("127.0.0.1:1", early_stop=Asha()))
    assert not (tmp_path / "sw").exists()
    for bad in ({"reduction_factor": 1}, {"grace_period": 0}):
        with pytest.raises(ConfigError, match="must be at least"):
            Asha(**bad)


def test_history_scores_are_the_validation_epochs_before_the_last(tmp_path):
    """What a trial reports to ASHA: (epoch, val_f1_2px) of each validated epoch but the last."""
    from crackkit.files import write_csv
    from crackkit.raysweep import _history_scores

    rows = [
        {"epoch": 1, "loss": 0.9, "val_f1_2px": 0.25},
        {"epoch": 2, "loss": 0.8, "val_f1_2px": None},
        {"epoch": 3, "loss": 0.7, "val_f1_2px": 0.5},
        {"epoch": 4, "loss": 0.6, "val_f1_2px": 0.75},
    ]
    write_csv(tmp_path / "history.csv", rows)
    assert _history_scores(tmp_path, epochs=4) == [(1, 0.25), (3, 0.5)]
    assert _history_scores(tmp_path / "missing", epochs=4) == []


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_the_mixed_supervision_grid_is_one_command(tmp_path, capsys, engine):
    """`sweep -p num_segmented 0,5,15,all --seeds 3` plans the paper's grid on either engine: 12
    runs named by N ("all" for every mask), each config holding its N (None for all) and seed."""
    parent = tmp_path / "ms"
    argv = ["sweep", "--preset", "tiny", "--sweep-dir", str(parent), "--engine", engine]
    argv += ["-p", "num_segmented", "0,5,15,all", "--seeds", "3", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "[sweep] varied: num_segmented = 0, 5, 15, all; seeds: 0, 1, 2" in out
    assert "[sweep] 12 runs in" in out
    sweep = plan_sweep(parent, {"num_segmented": [0, 5, 15, None]}, [0, 1, 2], preset="tiny")
    assert [r.name for r in sweep.runs][-3:] == [f"num_segmented=all-seed{s}" for s in range(3)]
    assert [(r.config.num_segmented, r.config.seed) for r in sweep.runs[:4]] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (5, 0),
    ]
    assert sweep.runs[-1].config.num_segmented is None
    assert not parent.exists(), "a dry run writes nothing"
