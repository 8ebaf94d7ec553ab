"""Re-queue jobs whose worker died and whose message is gone, and re-publish queued jobs the broker lost.

Kept as the entry point the worker calls when it starts; the work is :func:`workers.sweep.sweep`, which every
live worker also runs every ``sweep_interval`` seconds (see there for the rules and the bounds). Publishing
again is safe: the claim in :mod:`core.crud.lifecycle` lets only one delivery run, and the attempt cap still
applies.
"""

from __future__ import annotations

from core.settings import Settings
from workers.sweep import sweep


def recover_orphans(settings: Settings) -> list[str]:
    """One sweep now; the ids of the jobs published again."""
    return sweep(settings)
