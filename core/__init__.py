"""The shared layer under app/ (HTTP) and workers/ (Celery): settings, database, crud, storage, queue, job states."""
