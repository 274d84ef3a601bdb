"""One command-line vocabulary: --run, --quiet, --overwrite, --device, old spellings deprecated."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from crackkit.cli import DESCRIPTION, build_parser, main
from crackkit.config import ConfigError, make_config, read_config_file
from crackkit.run import config_from_arguments


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every (sub)command's parser by its path, e.g. 'data check'."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _subparsers(sub)
                if nested:
                    out.update({f"{name} {k}": v for k, v in nested.items()})
                else:
                    out[name] = sub
    return out


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings if a.help != argparse.SUPPRESS}


COMMANDS = _subparsers(build_parser())
#: commands that read a trained run folder, and those that run a model
RUN_COMMANDS = ["run", "predict", "export", "evaluate", "compare"]
DEVICE_COMMANDS = ["run", "predict", "evaluate"]


def test_every_command_is_listed():
    """The top-level help lists every command and carries no reST markup."""
    parser = build_parser()
    text = parser.format_help()
    tops = {name.split()[0] for name in COMMANDS}
    assert tops == {
        "run",
        "params",
        "data",
        "predict",
        "evaluate",
        "export",
        "sweep",
        "compare",
        "checkpoint",
    }
    for name in tops:
        assert re.search(rf"^    {name}\b", text, re.M), name
    assert "``" not in text and ":func:" not in text and "``" not in DESCRIPTION
    assert "exit status:" in text and "  2    bad input or usage" in text


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_one_way_to_be_quiet(command):
    """-q/--quiet in every command; no visible --no-progress."""
    opts = _options(COMMANDS[command])
    if command == "params":  # prints a table and nothing else
        return
    assert "--quiet" in opts and "-q" in opts
    assert "--no-progress" not in opts


@pytest.mark.parametrize("command", RUN_COMMANDS)
def test_a_run_folder_is_named_with_run(command):
    """--run DIR names a run folder; no visible --run-dir and no visible positional RUN_DIR."""
    parser = COMMANDS[command]
    opts = _options(parser)
    assert "--run" in opts and "--run-dir" not in opts
    visible_positionals = [
        a.dest for a in parser._actions if not a.option_strings and a.help != argparse.SUPPRESS
    ]
    assert not any("run" in d for d in visible_positionals), visible_positionals


@pytest.mark.parametrize("command", DEVICE_COMMANDS)
def test_device_wherever_a_model_runs(command):
    assert "--device" in _options(COMMANDS[command])


@pytest.mark.parametrize("command", ["run", "predict", "export", "evaluate", "compare"])
def test_overwrite_wherever_an_output_exists(command):
    assert "--overwrite" in _options(COMMANDS[command])


def test_three_tile_meanings_have_three_names():
    """Crack-free tile size, a tiled copy of a data set, inference tiling."""
    assert "--negative-tile" in _options(COMMANDS["data crack500"])
    assert "--tiled-copy" in _options(COMMANDS["data cfd"])
    assert "--tile" in _options(COMMANDS["predict"])
    for command in ("data crack500", "data cfd"):
        assert "--tile" not in _options(COMMANDS[command])
        assert "--tiles" not in _options(COMMANDS[command])


@pytest.mark.parametrize(
    ("argv", "dest", "value", "new"),
    [
        (["run", "--run-dir", "R"], "run_dir", "R", "--run DIR"),
        (["sweep", "--run-dir", "S"], "sweep_dir", "S", "--sweep-dir DIR"),
        (["data", "cfd", "--no-progress"], "quiet", True, "--quiet"),
        (["data", "crack500", "--no-progress"], "quiet", True, "--quiet"),
        (["data", "crack500", "--tile", "8", "16"], "tile", [8, 16], "--negative-tile H W"),
        (["data", "cfd", "--tiles", "64", "128"], "tiles", [64, 128], "--tiled-copy H W"),
    ],
)
def test_old_spellings_still_work_with_a_warning(capsys, argv, dest, value, new):
    """An old option stores into the new option's place and warns naming the new form."""
    args = build_parser().parse_args(argv)
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert "is deprecated" in err and f"use {new}" in err


def test_new_spellings_do_not_warn(capsys):
    build_parser().parse_args(["run", "--run", "R", "-q", "--device", "cpu"])
    build_parser().parse_args(["data", "crack500", "--negative-tile", "8", "16", "-q"])
    assert capsys.readouterr().err == ""


def test_positional_run_folder_is_deprecated(tmp_path, capsys):
    """export RUN_DIR (0.1) still names the run, with a warning; the error is the run's."""
    code = main(["export", str(tmp_path / "nope"), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert "the positional RUN_DIR of 'export' is deprecated" in err and "use --run DIR" in err
    assert code == 2 and "no run folder" in err


def test_compare_positional_and_run(tmp_path, capsys):
    """compare --run DIR; the old positional form warns; none at all is a usage error (2)."""
    assert main(["compare"]) == 2
    assert "compare needs run folders: --run DIR" in capsys.readouterr().err
    main(["compare", str(tmp_path / "missing")])
    assert "compare --run DIR [--run DIR ...]" in capsys.readouterr().err


def test_resume_old_spelling(tmp_path, capsys):
    """run --resume DIR (0.1) is read as --resume --run DIR, with a warning."""
    code = main(["run", "--resume", str(tmp_path / "missing"), "-q"])
    err = capsys.readouterr().err
    assert "use --resume --run RUN_DIR" in err and "cannot resume" in err and code == 2
    code = main(["run", "--resume", "--run", str(tmp_path / "missing"), "-q"])
    err = capsys.readouterr().err
    assert "deprecated" not in err and "cannot resume" in err and code == 2
    assert main(["run", "--resume", "-q"]) == 2
    assert "--resume needs the run folder" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_device_values_accepted(device):
    assert make_config({"device": device}).device == device


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", "tpu"])
def test_device_values_refused(device, capsys):
    """A bad device is refused naming the allowed forms, in the config and on the command line."""
    with pytest.raises(ConfigError, match="auto, cpu, cuda, cuda:N, mps"):
        make_config({"device": device})
    assert main(["predict", "x", "--run", "r", "--device", device]) == 2
    assert "cuda:N" in capsys.readouterr().err


def test_missing_cuda_index_is_refused():
    """cuda:N beyond the GPUs present (none here) is refused before anything runs."""
    import torch

    from crackkit.runtime import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this check needs a machine without CUDA")
    with pytest.raises(ConfigError, match="no CUDA device is available"):
        resolve_device("cuda:1")
    assert resolve_device("cpu").type == "cpu"


def test_run_on_a_missing_device_stops_before_any_folder(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this check needs a machine without CUDA")
    run_dir = tmp_path / "run"
    assert main(["run", "--preset", "tiny", "--device", "cuda:1", "--run", str(run_dir)]) == 2
    assert "no CUDA device is available" in capsys.readouterr().err
    assert not run_dir.exists()


def test_params_lists_every_parameter(capsys):
    """crackkit params prints every RunConfig field; --preset adds what the preset sets."""
    from crackkit.config import PRESETS, field_names

    assert main(["params", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    for name in field_names():
        assert re.search(rf"^[* ] {name} ", out, re.M), name
    assert "preset tiny" in out.splitlines()[0]
    assert re.search(r"^\* seg_prior_init ", out, re.M)  # a deviation is marked
    input_height = next(
        line for line in out.splitlines() if line.strip().startswith("input_height")
    )
    assert input_height.split()[-1] == str(PRESETS["tiny"]["input_height"])
    with pytest.raises(SystemExit) as exit_info:  # argparse's usage error
        main(["params", "--preset", "nope"])
    assert exit_info.value.code == 2


def _args(**kw) -> argparse.Namespace:
    base = {"param": None, "dataset": None, "preset": None, "config": None, "device": None}
    return argparse.Namespace(**(base | kw))


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "epochs: 3\nlr: 0.01\narchitecture: segdecnet\n"),
        (".yml", "epochs: 3\nlr: 0.01\narchitecture: segdecnet\n"),
        (".toml", 'epochs = 3\nlr = 0.01\narchitecture = "segdecnet"\n'),
        (".json", '{"epochs": 3, "lr": 0.01, "architecture": "segdecnet"}'),
    ],
)
def test_config_file_formats(tmp_path, suffix, text):
    """--config reads YAML, TOML and JSON; -p overrides the file, the file the preset."""
    path = tmp_path / f"c{suffix}"
    path.write_text(text)
    cfg = config_from_arguments(_args(config=str(path), preset="tiny", param=[["lr", "0.5"]]))
    assert (cfg.epochs, cfg.lr, cfg.architecture) == (3, 0.5, "segdecnet")
    assert cfg.input_height == 64  # from the preset, which the file does not set


def test_a_runs_config_json_reruns_it(tmp_path):
    """A run's config.json read back as --config gives the same RunConfig."""
    from crackkit.config import save_config

    cfg = make_config({"epochs": 7, "seed": 3, "dataset": "somewhere"}, preset="tiny")
    save_config(cfg, tmp_path / "config.json")
    assert config_from_arguments(_args(config=str(tmp_path / "config.json"))) == cfg


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("c.yaml", "- 1\n- 2\n", "expected a mapping"),
        ("c.yaml", "epochs: [1, 2]\n", "holds a list"),
        ("c.yaml", "!!python/object/apply:os.system ['true']\n", "cannot be parsed"),
        ("c.toml", "epochs = \n", "cannot be parsed"),
        ("c.json", "{", "cannot be parsed"),
        ("c.ini", "[x]\n", "unknown suffix '.ini'"),
    ],
)
def test_bad_config_files_are_refused_naming_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        read_config_file(path)
    assert str(path) in str(info.value)


def test_oversized_and_missing_config_files(tmp_path, monkeypatch):
    import crackkit.config as config

    with pytest.raises(ConfigError, match="not found"):
        read_config_file(tmp_path / "none.yaml")
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"epochs": 1}))
    monkeypatch.setattr(config, "CONFIG_FILE_MAX_BYTES", 4)
    with pytest.raises(ConfigError, match="at most 4 read"):
        read_config_file(path)


def test_cli_config_errors_exit_2_before_any_folder(tmp_path, capsys):
    """A bad value in a --config file stops crackkit run with exit 2 and no run folder."""
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 0\n")
    run_dir = tmp_path / "run"
    assert main(["run", "--config", str(path), "--run", str(run_dir), "-q"]) == 2
    assert "parameter 'epochs' got 0" in capsys.readouterr().err
    assert not run_dir.exists()


def test_predict_overwrite_keeps_the_old_files_aside(tmp_path):
    """An --out that holds files is refused, or with overwrite reused, its files moved aside."""
    from crackkit.apply import _output_dir
    from crackkit.run import RunDirError

    out = tmp_path / "out"
    out.mkdir()
    (out / "old.png").write_bytes(b"x")
    with pytest.raises(RunDirError, match="--overwrite"):
        _output_dir(out, tmp_path, "photos")
    assert _output_dir(out, tmp_path, "photos", overwrite=True) == out.resolve()
    (kept,) = out.glob("superseded-*/old.png")
    assert kept.read_bytes() == b"x" and not (out / "old.png").exists()


def test_compare_refuses_an_existing_out_without_overwrite(tmp_path):
    from crackkit.compare import compare_runs
    from crackkit.config import save_config

    run = tmp_path / "run"
    run.mkdir()
    save_config(make_config(preset="tiny"), run / "config.json")
    out = tmp_path / "COMPARE.md"
    out.write_text("mine")
    with pytest.raises(ConfigError, match="pass --overwrite"):
        compare_runs([run], out, overwrite=False)
    assert out.read_text() == "mine"
    compare_runs([run], out, overwrite=True)
    assert out.read_text() != "mine"


def test_console_routes_info_to_stdout_and_warnings_to_stderr(capsys):
    """Under a command, library INFO messages go to stdout as they are, warnings to stderr."""
    import logging

    from crackkit import console

    console.configure()
    log = logging.getLogger("crackkit.somewhere")
    log.info("an info line")
    log.warning("a warning line")
    out, err = capsys.readouterr()
    assert out == "an info line\n"
    assert err == "crackkit: warning: a warning line\n"
    console.configure()  # again: still one handler
    log.info("once")
    assert capsys.readouterr().out == "once\n"
