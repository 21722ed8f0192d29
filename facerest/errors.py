"""Errors that carry a message meant for the user.

The command line prints ``FacerestError`` as one line and exits with status 2; anything else is a bug
and keeps its traceback.
"""


class FacerestError(Exception):
    """A problem with the user's input (a path, a file, an option), explained in one sentence."""


class ImageReadError(FacerestError):
    """An image that cannot be used: missing, empty, truncated, not an image, or too large."""

    def __init__(self, source, reason: str):
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")
