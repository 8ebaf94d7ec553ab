"""Progress reporting and cooperative cancellation shared by every long-running loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ProgressFn = Callable[[int, int, dict[str, float]], None]
"""Called as ``progress(step, total, metrics)``; ``metrics`` holds e.g. the latest losses."""
StopFn = Callable[[], bool]
"""Asked between units of work (steps, batches, figures): ``True`` once the caller wants the work to stop."""


class Cancelled(Exception):
    """Raised inside a training loop when ``should_stop`` says the job was cancelled."""


def _never() -> bool:
    return False


def stop_if_asked(should_stop: StopFn | None) -> None:
    """Raise :class:`Cancelled` when ``should_stop`` is given and says stop (sampling, figures: outside training)."""
    if should_stop is not None and should_stop():
        raise Cancelled("cancelled by request")


def _ignore(step: int, total: int, metrics: dict[str, float]) -> None:
    return None


def _ignore_resume(step: int, total: int) -> None:
    return None


@dataclass
class TrainHooks:
    """What a trainer needs from its caller besides data: where to report, when to stop, where to checkpoint.

    ``checkpoint_dir`` set means: write a resumable checkpoint there every ``checkpoint_every`` steps
    and, on start, resume from the one found there; ``resumed(step, total)`` is called when training picks up
    from a checkpoint (never when it starts fresh).
    """

    progress: ProgressFn = field(default=_ignore)
    resumed: Callable[[int, int], None] = field(default=_ignore_resume)
    should_stop: Callable[[], bool] = field(default=_never)
    checkpoint_dir: Path | None = None
    checkpoint_every: int = 500

    def check_cancel(self) -> None:
        """Raise :class:`Cancelled` when the caller asked to stop."""
        if self.should_stop():
            raise Cancelled("cancelled by request")
