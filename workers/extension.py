"""An extended job starts from a copy of the files of the ended job it extends (``extends``), so that its
finished generators, filters and classifier runs are reused and only what the extension adds is trained.

The copy is made once, before the job plans its units (a marker file says it is complete, so a redelivered job
does not copy again over its own progress); each file is copied to a temporary name and renamed, so a copy cut
short leaves no half file. The extended job's own folder guard (``config.json``, :mod:`models.studies`) then
refuses the job if its design differs from the copied runs' after all. What is copied is the layout's to say
(:meth:`models.layout.OutputLayout.reused_by_extension`): not the results, report or sample PNGs (the job writes
its own), nor the checkpoints of finished units.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from models.layout import OutputLayout

MARKER = ".extended-from"


class ExtendedFilesMissingError(FileNotFoundError):
    """The job to extend has no folder any more (its files were deleted)."""


def copy_extended(source: Path, target: Path, source_job: str) -> int | None:
    """Copy ``source``'s reusable files into ``target``; returns how many, or None when a finished copy is there."""
    marker = target / MARKER
    if marker.is_file():
        return None
    if not source.is_dir():
        raise ExtendedFilesMissingError(f"job {source_job}, which this job extends, has no files any more")
    copied, layout = 0, OutputLayout(source)
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_symlink() or not path.is_file() or path.name.startswith(".") or path.suffix == ".tmp":
            continue
        if not layout.reused_by_extension(relative):
            continue
        destination = target / relative
        if destination.exists():
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_name(f".{destination.name}.copying")
        shutil.copy2(path, partial)
        os.replace(partial, destination)
        copied += 1
    target.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"{source_job}\n{copied} files\n")
    return copied
