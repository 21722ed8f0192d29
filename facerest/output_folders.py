"""Folders that facerest's commands write into, and how a command tells its own folders from the user's.

A command writes only into a folder that is new, empty, or marked as made by that command in an earlier run:
each such folder holds a marker file (``MARKER_NAME``) naming the command. A folder holding, say, a
``manifest.json`` of the user's own is not taken for one of ours.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import FacerestError

MARKER_NAME = ".facerest-output"


def mark_output_folder(folder: str | os.PathLike, command: str) -> None:
    """Mark ``folder`` as written by ``command`` (e.g. ``"make-testset"``)."""
    (Path(folder) / MARKER_NAME).write_text(f"{command}\n", encoding="utf-8")


def output_folder_command(folder: str | os.PathLike) -> str | None:
    """The command whose marker ``folder`` holds, or None when it holds none."""
    marker = Path(folder) / MARKER_NAME
    try:
        return marker.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (both resolved, so links and ``..`` count as they point)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())
