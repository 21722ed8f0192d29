"""Folders that facerest's commands write into, and how a command tells its own folders from the user's.

A command writes only into a folder that is new, empty, or marked as made by that command in an earlier run:
each such folder holds a marker file (``MARKER_NAME``) naming the command. A folder holding, say, a
``manifest.json`` of the user's own is not taken for one of ours.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import FacerestError

MARKER_NAME = ".facerest-output"
RESTORE_COMMAND = "restore"  # the name in the marker of restore's output folders
COMPARE_COMMAND = "compare"  # and of compare's folder of restored faces
RESTORED_FACES_FOLDER = "faces"  # restore's sub-folder of face crops: OUTPUT/faces/<name>_<index>.png
# the PNG text key of each face crop restore writes, valued with its photo's output name <name>: a later run removes
# only crops so tagged, never a photo that an input's own faces/ sub-folder put into OUTPUT/faces/
FACE_CROP_KEY = "facerest-face-of"


def mark_output_folder(folder: str | os.PathLike, command: str) -> None:
    """Mark ``folder`` (created when missing) as written by ``command`` (e.g. ``"make-testset"``)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MARKER_NAME).write_text(f"{command}\n", encoding="utf-8")
    except OSError as error:
        raise FacerestError(f"cannot write into {folder}: {error.strerror or error}") from None


def output_folder_command(folder: str | os.PathLike) -> str | None:
    """The command whose marker ``folder`` holds, or None when it holds none."""
    marker = Path(folder) / MARKER_NAME
    try:
        return marker.read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def check_writable_folder(folder: str | os.PathLike, what: str) -> None:
    """``FacerestError`` naming ``what`` (e.g. ``"output folder"``) unless files can be written in ``folder``, or in
    its nearest existing parent when it is still to be made. Checked before any work is done; nothing is left behind.
    """
    folder = Path(folder)
    existing = next(path for path in (folder, *folder.absolute().parents) if path.exists())
    if not existing.is_dir():
        raise FacerestError(f"cannot write into the {what} {folder}: {existing} is not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise FacerestError(f"cannot write into the {what} {folder}: {error.strerror or error}") from None


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies under it (both resolved, so links and ``..`` count as they point)."""
    return Path(path).resolve().is_relative_to(Path(folder).resolve())
