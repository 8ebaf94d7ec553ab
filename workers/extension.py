"""An extended job starts from a copy of the files of the ended job it extends (``extends``), so that its
finished generators, filters and classifier runs are reused and only what the extension adds is trained.

The copy is made once, before the job plans its units (a marker file says it is complete, so a redelivered job
does not copy again over its own progress); each file is copied to a temporary name and renamed, so a copy cut
short leaves no half file. The extended job's own folder guard (``config.json``, :mod:`models.studies`) then
refuses the job if its design differs from the copied runs' after all. Results, the report and sample PNGs are
not copied: the job writes its own.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MARKER = ".extended-from"
NOT_COPIED = ("results.json", "report.md", "samples")
"""Top-level entries of a job folder that describe that job as a whole: the extension writes its own."""


class ExtendedFilesMissingError(FileNotFoundError):
    """The job to extend has no folder any more (its files were deleted)."""


def copy_extended(source: Path, target: Path, source_job: str) -> int | None:
    """Copy ``source``'s reusable files into ``target``; returns how many, or None when a finished copy is there."""
    marker = target / MARKER
    if marker.is_file():
        return None
    if not source.is_dir():
        raise ExtendedFilesMissingError(f"job {source_job}, which this job extends, has no files any more")
    copied = 0
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if relative.parts[0] in NOT_COPIED or path.is_symlink() or not path.is_file():
            continue
        if path.name.startswith(".") or path.suffix == ".tmp":
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
