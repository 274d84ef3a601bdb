"""Helpers every data set importer shares: staging a build and moving it into place.

An importer builds its processed folder in a hidden sibling and renames it into place only when
everything succeeded (:func:`move_into_place`), refusing to replace an earlier import unless asked
(:func:`check_destination`).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import shutil
import sys
from pathlib import Path

from crackkit.data.folder import DatasetError, split_counts, visible_entries

_log = logging.getLogger(__name__)

__all__ = [
    "check_destination",
    "finish_import",
    "move_into_place",
    "read_record",
    "say",
    "shown",
    "subdirs",
    "warn_if_source_changed",
]


def say(verbose: bool, message: str) -> None:
    """Log ``message`` (the ``crackkit`` logger, level INFO) when ``verbose``."""
    if verbose:
        _log.info(message)


def check_destination(final: Path, overwrite: bool, hint: str = "another folder") -> None:
    """Refuse an existing ``final`` unless ``overwrite``; the message suggests ``hint``.

    Raises:
        DatasetError: ``final`` exists and ``overwrite`` is False.
    """
    if final.exists() and not overwrite:
        raise DatasetError(
            f"{final} already exists; pass overwrite=True (--overwrite) to replace it, or choose "
            f"{hint}"
        )


def move_into_place(staging: Path, final: Path, overwrite: bool) -> None:
    """Rename ``staging`` to ``final``; a replaced ``final`` is restored if the rename fails."""
    check_destination(final, overwrite)
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.replaced-{os.getpid()}")
        os.replace(final, old)
    try:
        os.replace(staging, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_record(folder: Path) -> dict:
    """The ``dataset.json`` of an earlier import in ``folder``, or ``{}``."""
    try:
        return json.loads((folder / "dataset.json").read_text())
    except (OSError, ValueError):
        return {}


def warn_if_source_changed(final: Path, sha256: str | None) -> None:
    """Warn when the import in ``final`` came from an archive of another SHA-256 than ``sha256``:
    a second download of an unpinned source can differ from the first."""
    if sha256 is None or not final.exists():
        return
    source = read_record(final).get("source")
    before = source.get("sha256") if isinstance(source, dict) else None
    if before and before != sha256:
        print(
            f"WARNING: {final} was imported from an archive of SHA-256 {before}; this archive's "
            f"is {sha256}: the source's bytes changed since (or it is another archive)",
            file=sys.stderr,
            flush=True,
        )


def shown(text: str, shown_as: tuple[str, str] | None) -> str:
    """Replace a temporary extraction folder in ``text`` by ``ARCHIVE:`` for readable messages."""
    if shown_as is None:
        return text
    folder, label = shown_as
    return text.replace(folder + os.sep, f"{label}:").replace(folder, f"{label}:")


def subdirs(folder: Path) -> dict[str, Path]:
    """Visible sub-folders of ``folder`` by lower-case name, junk left out."""
    return {p.name.lower(): p for p in visible_entries(folder) if p.is_dir()}


def finish_import(
    staging: Path,
    final: Path,
    record: dict,
    counts: dict,
    *,
    overwrite: bool,
    progress: bool = True,
) -> None:
    """Check what ``staging`` holds against ``counts``, write ``record`` as its ``dataset.json``
    (with a ``created`` time stamp) and move it into place.

    Raises:
        RuntimeError: the files written differ from the counts the importer reported.
        DatasetError: ``final`` exists and ``overwrite`` is False.
    """
    written = split_counts(staging, progress=progress)
    if written != counts:
        raise RuntimeError(f"import wrote {written} but counted {counts}")
    record = dict(record)
    record["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    (staging / "dataset.json").write_text(json.dumps(record, indent=2) + "\n")
    move_into_place(staging, final, overwrite)
