"""Errors shared by the science modules; torch-free, so the API process can catch them too."""

from __future__ import annotations

MESSAGE_LIMIT = 200
"""Longest piece of outside data (a file name, a list of class names) that a message quotes."""


class DatasetError(ValueError):
    """A dataset could not be loaded or cannot be used; the message names the file and what is wrong."""


class DatasetTooLargeError(DatasetError):
    """The dataset may be fine but is over a size limit (pixels, bytes): an upload answers it with 413, not 422."""


def clip(value: object, limit: int = MESSAGE_LIMIT) -> str:
    """``value`` as text that is safe to quote in a message: control characters replaced, at most ``limit`` long.

    Uploads choose member names, class names and array keys; quoting them whole would let a client make our
    error messages (and logs, and the web page) arbitrarily long.
    """
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value)[: limit + 1])
    return text if len(text) <= limit else text[: limit - 3] + "..."
