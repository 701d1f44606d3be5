"""Reading inside a registered root: the model and dataset paths the operator registered are trusted, but
what lies inside them often is not (datasets and model directories are written by others). Every file a
task reads from such a root must resolve, after ``..`` and symlinks, to a place inside that root.

These checks come before the reads; they do not guard against someone who swaps files inside the root
while a worker is reading it, nor against hard links (which look like ordinary files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class UnsafePath(ValueError):
    """A path that should lie inside a registered root leads outside it (through ``..``, an absolute path or
    a symlink), or cannot be resolved at all; the message names the path, where it leads and the root."""

    def __init__(self, root: Path, candidate: Path, why: str) -> None:
        super().__init__(
            f"{candidate} {why}, so it is not inside {root}; hps reads only files inside a registered "
            "model or dataset"
        )
        self.root = root
        self.candidate = candidate


def inside(root: Path, candidate: Path) -> Path:
    """``candidate`` fully resolved (every ``..`` and symlink followed), when that lies inside ``root``
    (itself resolved); otherwise :class:`UnsafePath`. A relative ``candidate`` is taken relative to
    ``root``. The candidate need not exist."""
    base = root.resolve()
    path = root / candidate  # ``candidate`` itself when it is absolute
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop: RuntimeError before Python 3.13
        raise UnsafePath(root, path, f"cannot be resolved ({error})") from None
    if not resolved.is_relative_to(base):
        raise UnsafePath(root, path, f"resolves to {resolved}")
    return resolved


def entries_in(root: Path, folder: Path) -> list[Path]:
    """Every entry directly in ``folder`` (a folder inside ``root``), sorted by name, as ``folder / name``.
    :class:`UnsafePath` when ``folder`` or any entry, of whatever kind, resolves outside ``root``."""
    inside(root, folder)
    entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    for entry in entries:
        inside(root, entry)
    return entries


def files_under(root: Path) -> list[Path]:
    """Every file (or symlink to one) anywhere under ``root``, sorted, as paths under ``root``.
    :class:`UnsafePath` when any entry in the tree, of whatever kind, resolves outside ``root``."""
    return sorted(_files_in_tree(root, root))


def _files_in_tree(root: Path, folder: Path) -> list[Path]:
    files = []
    for entry in entries_in(root, folder):
        if entry.is_symlink() and entry.is_dir():
            # It resolved inside root, so its files are listed through the real folder already; descending
            # into it as well would list them twice (or forever, for a link to an ancestor).
            continue
        if entry.is_dir():
            files += _files_in_tree(root, entry)
        elif entry.is_file():
            files.append(entry)
    return files


def json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The JSON objects of a JSONL file with their line numbers (for messages); blank lines are skipped,
    and a line that is not a JSON object is a ``ValueError`` naming it."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"dataset {path}: line {number} is not JSON: {error}") from None
        if not isinstance(record, dict):
            raise ValueError(f"dataset {path}: line {number} is not a JSON object")
        records.append((number, record))
    return records
