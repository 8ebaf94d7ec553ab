"""Celery workers: take a job id, run the science pipeline (``models``), report into the shared database."""
