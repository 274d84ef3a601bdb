"""COMPARE.md from hand-made run folders with known numbers (statistics module as the oracle).

The spread is the sample standard deviation (n - 1 denominator, ``statistics.stdev``), printed
as ``mean ± std`` with four decimals; a group of one run shows its value alone.
"""

from __future__ import annotations

import json
import statistics

import pytest

from crackkit.cli import main
from crackkit.compare import collect_run_dirs, compare_runs, load_run, mean_std, parse_run_dirs
from crackkit.config import ConfigError, make_config, save_config
from crackkit.report import PUBLISHED_CRACK500

# (lr, seed) -> decision F1, 2-pixel F1, Dice
NUMBERS = {
    (0.001, 0): (0.61, 0.50, 0.40),
    (0.001, 1): (0.64, 0.52, 0.42),
    (0.001, 2): (0.70, 0.57, 0.47),
    (0.0001, 0): (0.55, 0.45, 0.30),
    (0.0001, 1): (0.58, 0.41, 0.33),
}


def write_run(
    path, *, f1, f1_2px, dice, history=True, finished=True, thresholds="validation", **params
):
    """A run folder with config.json, metrics.json and history.csv holding the given numbers.

    ``thresholds`` is where the headline thresholds came from (metrics.json's protocol).
    """
    path.mkdir(parents=True)
    cfg = make_config({"epochs": 1} | params, preset="tiny")
    save_config(cfg, path / "config.json")
    (path / "checkpoints").mkdir()
    (path / "checkpoints" / "last.pt").write_bytes(b"")
    if not finished:
        return path
    metrics = {
        "split": "test",
        "checkpoint_epoch": 2,
        "decision": {
            "precision": 0.9,
            "recall": 0.8,
            "f1": f1,
            "accuracy": 0.75,
            "ap_step": 0.85,
            "ap_trapezoid": 0.84,
            "auc": 0.8,
            "threshold": 0.5,
        },
        "pixel_2px": {"precision": 0.6, "recall": 0.7, "f1": f1_2px, "threshold": 0.48},
        "dice": {"value": dice, "threshold": 0.5},
        "iou": {"value": dice / (2 - dice), "threshold": 0.5},
        "timing": {"train_and_validate": 12.5},
        "protocol": {"thresholds": thresholds},
    }
    (path / "metrics.json").write_text(json.dumps(metrics))
    if history:
        (path / "history.csv").write_text(
            "epoch,loss,val_loss,val_f1_2px,val_ap\n"
            f"1,0.9,0.8,{f1_2px - 0.1},0.7\n2,0.7,0.6,{f1_2px},0.8\n"
        )
    return path


@pytest.fixture
def runs(tmp_path):
    """Five finished runs (lr 0.001 x seeds 0-2, lr 0.0001 x seeds 0-1) and an unfinished one."""
    parent = tmp_path / "sweep"
    for (lr, seed), (f1, f1_2px, dice) in NUMBERS.items():
        write_run(parent / f"lr={lr}-seed{seed}", f1=f1, f1_2px=f1_2px, dice=dice, lr=lr, seed=seed)
    write_run(parent / "lr=0.01-seed0", f1=0, f1_2px=0, dice=0, lr=0.01, finished=False)
    return parent


def _oracle(values):
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def _section(text, title):
    return text.split(f"## {title}\n\n")[1].split("\n\n")[0]


def _row(table, first_cell):
    rows = [r for r in table.splitlines() if r.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, (first_cell, table)
    return [c.strip() for c in rows[0].strip("|").split("|")]


def test_mean_std_matches_statistics():
    """mean_std is statistics.mean and the sample stdev; one value has no spread."""
    xs = [0.61, 0.64, 0.70]
    assert mean_std(xs) == (statistics.mean(xs), statistics.stdev(xs), 3)
    assert mean_std([0.5, None]) == (0.5, None, 1)
    assert mean_std([None]) == (None, None, 0)


def test_groups_seeds_into_mean_std_rows(runs):
    """One row per lr with its seeds, n and mean ± sample std, exactly as the oracle prints it."""
    text = compare_runs([runs]).read_text()
    decision = _section(text, "Decision")
    assert decision.splitlines()[0] == (
        "| lr | Seeds | n | Pr | Re | F1 | Acc | AP (step) | AP (trapz) | AUC |"
    )
    hi, lo = _row(decision, "0.001"), _row(decision, "0.0001")
    assert hi[1:3] == ["0, 1, 2", "3"] and lo[1:3] == ["0, 1", "2"]
    f1_hi = [NUMBERS[(0.001, s)][0] for s in range(3)]
    f1_lo = [NUMBERS[(0.0001, s)][0] for s in range(2)]
    assert hi[5] == f"**{_oracle(f1_hi)}**" == "**0.6500 ± 0.0458**"
    assert lo[5] == _oracle(f1_lo) == "0.5650 ± 0.0212"
    pixel = _section(text, "2 pixel distance")
    assert pixel.splitlines()[0] == "| lr | Seeds | n | Pr | Re | F1 | Threshold |"
    f1px_hi = [NUMBERS[(0.001, s)][1] for s in range(3)]
    assert _row(pixel, "0.001")[5] == f"**{_oracle(f1px_hi)}**"
    dice_lo = [NUMBERS[(0.0001, s)][2] for s in range(2)]
    assert _row(_section(text, "Dice and IoU"), "0.0001")[3] == _oracle(dice_lo)


def test_ties_are_all_bold_and_thresholds_never(runs):
    """Equal means are bold in every tied row; the threshold column carries no bold."""
    text = compare_runs([runs]).read_text()
    decision = _section(text, "Decision")
    for lr in ("0.001", "0.0001"):
        assert _row(decision, lr)[3] == "**0.9000 ± 0.0000**"
    pixel = _section(text, "2 pixel distance")
    assert "**" not in _row(pixel, "0.001")[6] and "**" not in _row(pixel, "0.0001")[6]


def test_fixed_parameters_listed_once(runs):
    """Parameters equal across runs are in one table; the varied one is a column, not a row."""
    text = compare_runs([runs]).read_text()
    fixed = _section(text, "Parameters equal across all runs")
    assert "| epochs | 1 |" in fixed and "| input_height | 64 |" in fixed
    assert "| lr |" not in fixed and "| seed |" not in fixed
    assert "- `lr`: 0.0001, 0.001, 0.01" in text


def test_unfinished_run_is_listed_not_a_crash(runs):
    """A folder without metrics.json appears under 'Unfinished runs' with how to resume it."""
    text = compare_runs([runs]).read_text()
    unfinished = _section(text, "Unfinished runs")
    assert "`lr=0.01-seed0`" in unfinished and "--resume" in unfinished
    assert "| 0.01 |" not in _section(text, "Decision")
    assert text.startswith(
        "# Comparison of 6 runs\n\n5 finished run(s) in 2 group(s), 1 unfinished"
    )


def test_per_run_table_and_curves(runs):
    """Every finished run has a row; curve PNGs are written next to COMPARE.md and linked."""
    out = compare_runs([runs])
    text = out.read_text()
    per_run = _section(text, "Per run")
    assert len(per_run.splitlines()) == 2 + 5
    assert _row(per_run, "lr=0.001-seed2")[1:5] == ["0.001", "2", "2", "validation"]
    for name in ("compare_loss.png", "compare_val_f1_2px.png", "compare_val_ap.png"):
        assert (out.path.parent / name).stat().st_size > 1000
        assert f"]({name})" in text


def test_single_run_group_has_no_spread(tmp_path):
    """A group of one run shows its value without ± and nothing is bold with a single group."""
    run = write_run(tmp_path / "a", f1=0.7, f1_2px=0.5, dice=0.4)
    text = compare_runs([run], tmp_path / "out" / "C.md").read_text()
    row = _row(_section(text, "Decision"), "0")
    assert row == ["0", "1", "0.9000", "0.8000", "0.7000", "0.7500", "0.8500", "0.8400", "0.8000"]
    assert (tmp_path / "out" / "c_loss.png").is_file()


def test_crack500_runs_get_published_rows(tmp_path):
    """CRACK500 runs add the published 2-pixel comparison rows, with the group's mean ± std."""
    for seed, f1 in ((0, 0.70), (1, 0.74)):
        write_run(tmp_path / f"s{seed}", f1=0.9, f1_2px=f1, dice=0.5, dataset="crack500", seed=seed)
    text = compare_runs([tmp_path]).read_text()
    table = _section(text, "Published 2-pixel results on CRACK500")
    for name, pr, re, f1 in PUBLISHED_CRACK500:
        assert f"| {name} | {pr:.4f} | {re:.4f} | {f1:.4f} |" in table
    assert f"(n=2) | 0.6000 ± 0.0000 | 0.7000 ± 0.0000 | {_oracle([0.70, 0.74])} |" in table
    assert "| Seed run (SegDecNet, crack500_run6_5) |" in table
    assert "threshold tuned on the test split" in table
    assert "threshold from the validation split" in table


def test_crack500_oracle_runs_are_not_beside_published_rows(tmp_path):
    """A group whose runs lack validation thresholds is left out of the published table."""
    for seed in (0, 1):
        write_run(
            tmp_path / f"s{seed}",
            f1=0.9,
            f1_2px=0.7,
            dice=0.5,
            dataset="crack500",
            seed=seed,
            thresholds="validation" if seed == 0 else "oracle",
        )
    text = compare_runs([tmp_path]).read_text()
    section = text.split("## Published 2-pixel results on CRACK500\n\n")[1].split("\n## ")[0]
    assert "This comparison" not in section
    assert "Not listed" in section and "all runs" in section
    assert _row(_section(text, "Per run"), "s1")[3] == "oracle"


def test_synthetic_runs_have_no_published_rows(runs):
    """The published CRACK500 rows appear only for CRACK500 runs."""
    assert "Published" not in compare_runs([runs]).read_text()


def test_collect_and_errors(tmp_path, runs, capsys):
    """A parent stands for its runs; missing paths fail with one line from the CLI."""
    assert len(collect_run_dirs([runs])) == 6
    assert load_run(runs / "lr=0.01-seed0").finished is False
    with pytest.raises(FileNotFoundError):
        collect_run_dirs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no run folders"):
        collect_run_dirs([tmp_path / "empty"])
    assert main(["compare", "--run", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_cli_compare_writes_out(tmp_path, runs, capsys):
    """crackkit compare --run RUN ... --out FILE prints the file's path."""
    out = tmp_path / "cmp" / "COMPARE.md"
    dirs = ["--run", str(runs / "lr=0.001-seed0"), "--run", str(runs / "lr=0.0001-seed0")]
    assert main(["compare", *dirs, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert "| lr | Seeds | n |" in out.read_text()


def test_parse_run_dirs():
    """The notebook's run_dirs parameter: comma-separated text or a list; anything else refused."""
    assert parse_run_dirs("") == []
    assert parse_run_dirs(" a, b ,") == ["a", "b"]
    assert parse_run_dirs(["a", "b"]) == ["a", "b"]
    with pytest.raises(ConfigError, match="run_dirs"):
        parse_run_dirs(5)


def test_stopped_run_is_labelled_and_kept_out_of_the_means(runs):
    """A run early stopping ended is listed under 'Stopped early' with its epoch and score; the
    group it belongs to keeps the mean ± std of its finished runs only."""
    stopped = write_run(
        runs / "lr=0.001-seed3", f1=0, f1_2px=0, dice=0, lr=0.001, seed=3, finished=False
    )
    record = {"by": "ASHA", "epoch": 1, "metric": "val_f1_2px", "value": 0.123456}
    (stopped / "stopped.json").write_text(json.dumps(record))
    text = compare_runs([runs]).read_text()
    assert text.startswith(
        "# Comparison of 7 runs\n\n5 finished run(s) in 2 group(s), 1 stopped early, 1 unfinished"
    )
    note, table = text.split("## Stopped early\n\n")[1].split("\n\n")[:2]
    assert (
        "not evaluated on the test split" in note and "none of them is in the tables' means" in note
    )
    header, row = table.splitlines()[0], _row(table, "`lr=0.001-seed3`")
    assert header == "| Run | lr | Seed | Stopped after epoch | Score | Value | By |"
    assert row == ["`lr=0.001-seed3`", "0.001", "3", "1", "val_f1_2px", "0.1235", "ASHA"]
    f1_hi = [NUMBERS[(0.001, s)][0] for s in range(3)]
    assert _row(_section(text, "Decision"), "0.001")[1:3] == ["0, 1, 2", "3"]
    assert _row(_section(text, "Decision"), "0.001")[5] == f"**{_oracle(f1_hi)}**"
    assert "lr=0.001-seed3" not in _section(text, "Per run")
    assert "lr=0.001-seed3" not in _section(text, "Unfinished runs")
    assert load_run(stopped).stopped == record and not load_run(stopped).finished
