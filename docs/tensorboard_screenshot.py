"""Take docs/tensorboard.png: TensorBoard on a run folder, in headless Chromium.

Starts ``tensorboard --logdir RUN_OR_RUNS`` on 127.0.0.1, waits until it answers, takes a
screenshot of its scalars with headless Chromium (the Debian package ``chromium``), stops
TensorBoard. A run made before crackkit wrote event files gets them first with ``--backfill``:
:class:`crackkit.tensorboard.RunBoard` fed the rows of its ``history.csv`` and its
``metrics.json`` and gallery, what the training loop's hook and the evaluation feed it.

    .venv/bin/python docs/tensorboard_screenshot.py runs/<run> [--backfill]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

OUT = Path(__file__).resolve().parent / "tensorboard.png"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def backfill(run_dir: Path) -> None:
    """Write the event files of a run that has none, from its history and metrics."""
    from crackkit.run import Run
    from crackkit.tensorboard import RunBoard

    run = Run.open(run_dir)
    if run.file("tensorboard").exists():
        raise SystemExit(f"{run.file('tensorboard')} exists; nothing to backfill")
    with RunBoard(run) as board:
        for row in run.history():
            board.epoch(row)
        gallery = run.file("gallery")
        board.evaluation(run.read("metrics"), gallery=gallery if gallery.is_file() else None)


def wait_until_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"TensorBoard did not answer at {url} within {seconds} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logdir", type=Path, help="a run folder, or a folder of runs")
    parser.add_argument("--backfill", action="store_true", help="write the run's events first")
    parser.add_argument("--port", type=int, default=6123)
    parser.add_argument("--size", default="1400,900", help="window width,height")
    parser.add_argument("--wait-ms", type=int, default=20000, help="page render time")
    parser.add_argument(
        "--tags",
        default="loss|lr|validation/(f1_2px|ap|dice)",
        help="regular expression of the tags shown",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.backfill:
        backfill(args.logdir)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install chromium")
    tensorboard = Path(sys.executable).with_name("tensorboard")
    server = subprocess.Popen(
        [
            str(tensorboard),
            "--logdir",
            str(args.logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(args.port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{args.port}/"
        wait_until_up(url)
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run(
                [
                    chromium,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={profile}",
                    f"--window-size={args.size}",
                    f"--virtual-time-budget={args.wait_ms}",
                    f"--screenshot={args.out}",
                    f"{url}?darkMode=false#scalars&tagFilter={quote(args.tags)}&_smoothingWeight=0",
                ],
                check=True,
                timeout=180,
                capture_output=True,
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
