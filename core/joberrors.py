"""What a client reads when its job fails: one sentence that says what to change, with no server path and no
traceback (the worker logs the traceback, under the job id).

Known failures keep their message (a dataset the reader refused, a setting the science refused, a checkpoint
the server does not have), with every absolute path in it cut to its last part; running out of memory says
which settings to lower; anything else says that the worker log has the details.
"""

from __future__ import annotations

import re

from models.errors import DatasetError

MAX_ERROR_CHARS = 500
"""Longest error a job records for its client."""
_PATH = re.compile(r"(?<![\w.~])(?:~|[A-Za-z]:)?(?:/[^\s/'\"`:,;()<>\[\]]+)+/?")
_CLIENT_ERRORS = (DatasetError, ValueError, LookupError, NotImplementedError)
"""Failures whose message is about the client's data or settings (science and service code raise these)."""


def strip_paths(text: str) -> str:
    """``text`` with every absolute path replaced by ``…/<last part>`` (``/srv/x/y.pth`` → ``…/y.pth``)."""

    def short(match: re.Match[str]) -> str:
        last = match.group(0).rstrip("/").rsplit("/", 1)[-1]
        return f"…/{last}" if last else "…"

    return _PATH.sub(short, text)


def public_error(exc: BaseException) -> str:
    """The sentence a client sees for ``exc`` (at most :data:`MAX_ERROR_CHARS` characters)."""
    name = type(exc).__name__
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError":
        where = "the GPU" if name == "OutOfMemoryError" else "the worker"
        text = (f"{where} ran out of memory: lower batch_size, sample_batch_size or eval_batch_size in the "
                "classifier or generator settings, or upload smaller images (image_size)")  # fmt: skip
    elif isinstance(exc, FileNotFoundError):
        text = f"a file the job needs is missing: {strip_paths(message) or name}"
    elif isinstance(exc, _CLIENT_ERRORS) and message:
        text = strip_paths(message)
    else:
        text = (f"the job failed inside the worker ({name}); the worker's log has the details under this job's "
                "id: retry, or report it to the service's operator")  # fmt: skip
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
