"""The documentation: the site builds warning-free, and the commands it shows work.

Every line of a ```bash block in README.md and docs/*.md is either run here (the short
``crackkit`` commands, in a sandbox folder holding ``photos/`` and a folder data set
``my-cracks/``, after the docs' own one-minute ``crackkit run --preset tiny --run runs/tiny``) or
carries a comment saying why not: ``# setup`` (an install), ``# server`` (runs until stopped),
``# long: WHERE`` (a long run, naming the benchmark or results section that measured it) or
``# tested: PATH`` (a test file that runs it).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from crackkit.cli import main
from crackkit.config import field_names
from crackkit.paths import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"#\s*(setup\b.*|server\b.*|long:\s*\S.*|tested:\s*(\S+).*)$")
SMOKE = "crackkit run --preset tiny --run runs/tiny --quiet"


def shown_commands() -> list[tuple[str, str, str | None]]:
    """(page, command, marker) for every command line of every ```bash block."""
    out = []
    for page in PAGES:
        in_bash = False
        pending = ""
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                in_bash = line.strip() == "```bash" and not in_bash
                continue
            if not in_bash or not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            text = pending + line
            pending = ""
            found = MARKER.search(text)
            command = text[: found.start()] if found else text
            command = shlex.join(shlex.split(command, comments=True))  # a plain comment goes
            out.append((page.name, command, found.group(0) if found else None))
    return out


def test_docs_build_strict(tmp_path):
    """mkdocs build --strict: no warning (broken link, bad docstring, missing page)."""
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parameters = (site / "parameters" / "index.html").read_text()
    for name in field_names():
        assert f"<code>{name}</code>" in parameters, name
    cli = (site / "cli" / "index.html").read_text()
    for command in ("run", "params", "data check", "predict", "evaluate", "export", "sweep"):
        assert f"crackkit {command}" in cli, command
    assert "crackkit:" not in (site / "index.html").read_text()  # every marker was replaced


def test_every_shown_command_is_run_or_says_why_not():
    """A line without a marker is a crackkit command (run below); a marker names its reason."""
    commands = shown_commands()
    assert any(c == SMOKE for _, c, _ in commands)
    for page, command, marker in commands:
        if marker is None:
            assert command.startswith("crackkit "), f"{page}: {command!r} needs a marker"
            assert "<" not in command, f"{page}: {command!r} has a placeholder"
        elif marker.startswith("# tested:") or marker.startswith("#tested:"):
            path = MARKER.search(marker).group(2)
            assert (ROOT / path).is_file(), f"{page}: {path} does not exist"


@pytest.fixture(scope="module")
def sandbox(module_kit_dirs, tmp_path_factory):
    """A folder with photos/ and a folder data set my-cracks/, as the docs assume."""
    from PIL import Image

    from crackkit.data.folder import write_sample
    from crackkit.data.synthetic import generate_sample

    base = tmp_path_factory.mktemp("docs")
    photos = base / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        image, _ = generate_sample(rng, 96, 160, positive=i == 0)
        Image.fromarray(image).save(photos / f"p{i}.jpg")
        for split in ("train", "val", "test"):
            write_sample(
                base / "my-cracks", split, f"{split}{i}", *generate_sample(rng, 96, 160, i == 0)
            )
    return base


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # --help, --version
        return int(exc.code or 0)


def test_shown_commands_work(sandbox, monkeypatch, capsys):
    """Each short crackkit command of the docs exits 0 (the smoke run first: the others use it)."""
    monkeypatch.chdir(sandbox)
    commands = list(dict.fromkeys(c for _, c, m in shown_commands() if m is None))
    commands.sort(key=lambda c: (c != SMOKE, not c.startswith("crackkit export")))
    failed = []
    for command in commands:
        code = _run(shlex.split(command)[1:])  # in this process: no second torch import
        output = capsys.readouterr()
        if code != 0:
            failed.append(f"{command} -> {code}: {output.err[-500:]}")
    assert not failed, "\n".join(failed)
