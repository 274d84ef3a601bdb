"""Bad numbers and files given to the command line: one line naming the parameter or file, the
documented exit status, a traceback only with --debug."""

from __future__ import annotations

import json

import pytest

from crackkit import cli
from crackkit.cli import EXIT_STATUS, build_parser, main
from crackkit.config import ConfigError, load_config, make_config


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lr", "nan"),
        ("lr", "inf"),
        ("ema_decay", "nan"),
        ("delta_cls_loss", "+inf"),
        ("weighted_seg_loss_p", "NaN"),
        ("lr_warmup", "Infinity"),
    ],
)
def test_non_finite_parameters_refused(tmp_path, capsys, name, value):
    """-p NAME nan/inf: exit 2, the parameter named, no run folder made."""
    run_dir = tmp_path / "run"
    argv = ["run", "--preset", "tiny", "-p", name, value, "--run", str(run_dir)]
    assert main(argv) == 2
    err = _err_lines(capsys)
    assert err == [f"crackkit: error: parameter {name!r} got {value!r}; it must be a finite number"]
    assert not run_dir.exists()


def test_sweep_values_refused_too(tmp_path, capsys):
    """crackkit sweep -p lr 0.1,nan refuses the non-finite value."""
    argv = ["sweep", "--preset", "tiny", "--sweep-dir", str(tmp_path / "sw"), "-p", "lr", "0.1,nan"]
    assert main(argv) == 2
    assert "it must be a finite number" in _err_lines(capsys)[-1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "holds a JSON list, not an object of run parameters"),
        ('{"lr": NaN}', "parameter 'lr' got nan; it must be a finite number"),
        ('{"ema_decay": Infinity}', "parameter 'ema_decay' got inf"),
        ('"lr"', "holds a JSON str"),
        ("{not json", "is not valid JSON"),
    ],
)
def test_bad_config_json_named(tmp_path, capsys, text, message):
    """A run folder's config.json that is a list, holds NaN, or is not JSON: refused naming it."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(text)
    with pytest.raises(ConfigError, match="config.json"):
        load_config(run_dir / "config.json")
    assert main(["run", "--resume", "--run", str(run_dir), "--quiet"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and message in err[0] and "config.json" in err[0], err
    for argv in (
        ["predict", str(tmp_path), "--run", str(run_dir)],
        ["export", "--run", str(run_dir)],
    ):
        assert main([*argv, "--out", str(tmp_path / "o")]) == 2
        assert len(_err_lines(capsys)) == 1


def test_non_finite_values_from_python_and_notebooks():
    """The notebooks' guard and the library build configs through make_config: same refusal."""
    from crackkit.notebook import ParameterGuard

    with pytest.raises(ConfigError, match="finite"):
        make_config({"lr": float("nan")})
    scope: dict = {}
    guard = ParameterGuard(scope)
    scope["lr"] = float("inf")  # what papermill's injected cell would set
    with pytest.raises(ConfigError, match="parameter 'lr' got inf"):
        guard.config(scope)


def test_debug_shows_the_traceback_before_or_after_the_command(tmp_path, capsys):
    """--debug adds the traceback; the last line and the status stay the same."""
    missing = str(tmp_path / "missing")
    assert main(["run", "--resume", "--run", missing]) == 2
    plain = _err_lines(capsys)
    assert len(plain) == 1 and "Traceback" not in plain[0]
    for argv in (
        ["--debug", "run", "--resume", "--run", missing],
        ["run", "--resume", "--run", missing, "--debug"],
    ):
        assert main(argv) == 2
        err = _err_lines(capsys)
        assert err[0].startswith("Traceback") and err[-1] == plain[0]


def test_an_unexpected_error_is_one_line_exit_1(monkeypatch, capsys):
    """A bug inside crackkit: one line that says so and points at --debug, exit 1."""

    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(cli, "_cmd_compare", broken)
    assert main(["compare", "x"]) == 1
    err = _err_lines(capsys)
    assert err == [
        "crackkit: error: internal error, TypeError: unsupported operand (--debug shows the "
        "traceback)"
    ]


def test_interrupt_exits_130(monkeypatch, capsys):
    """Ctrl-C ends with one line and status 130."""

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_cmd_compare", interrupted)
    assert main(["compare", "x"]) == 130
    assert _err_lines(capsys) == ["crackkit: interrupted"]


def test_usage_errors_exit_2(capsys):
    """argparse's own refusals (an unknown option) exit 2 as well."""
    with pytest.raises(SystemExit) as stop:
        main(["predict", "--no-such-option"])
    assert stop.value.code == 2


def test_exit_statuses_are_in_the_help():
    """`crackkit --help` lists the convention."""
    text = build_parser().format_help()
    assert "exit status:" in text and "--debug" in text
    for code in EXIT_STATUS:
        assert f"  {code} " in text
    assert json.dumps(sorted(EXIT_STATUS)) == "[0, 1, 2, 130]"
