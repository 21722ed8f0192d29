"""Errors that carry a message meant for the user.

The command line prints ``FacerestError`` as one line and exits with status 2; anything else is a bug
and keeps its traceback.
"""

import importlib


class FacerestError(Exception):
    """A problem with the user's input (a path, a file, an option), explained in one sentence."""


class ImageReadError(FacerestError):
    """An image that cannot be used: missing, empty, truncated, not an image, or too large."""

    def __init__(self, source, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")


class MissingPackageError(FacerestError):
    """A package that one feature needs (a face detector, a metric) cannot be imported."""


def import_package(module: str, package: str, needed_for: str):
    """``importlib.import_module(module)``, or ``MissingPackageError`` naming the pip package that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingPackageError(
            f"{needed_for} needs the {package} package, which cannot be imported ({one_line(error)}): "
            f"pip install {package}"
        ) from None


def shown_value(value, limit: int = 24) -> str:
    """``repr(value)`` for a message, or when longer than ``limit`` its size, so that a 300-digit number in an
    option does not make a 300-character error line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, int):
        return f"a number of {len(str(abs(value)))} digits"
    return f"{text[:limit]}... ({len(text)} characters)"


def one_line(error: BaseException) -> str:
    """``error``'s message as one line (a library's message may run over several: they are joined with "; "), or
    its type's name when it has none."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__
