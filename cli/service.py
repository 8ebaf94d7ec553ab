"""Service commands of ``genmix``: ``serve``, ``worker``, ``apikey``, ``db`` and ``demo``.

``--data-dir`` names the service's state directory (SQLite database, filesystem broker, artifacts); it
sets ``GENMIX_STATE_DIR`` so child processes (workers, uvicorn workers) agree with their parent. Dataset
files are read from ``GENMIX_DATA_DIR`` (default: the repository's sibling ``../shared/datasets``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

DATA_DIR_HELP = "State directory (database, broker, artifacts) of an embedded service; sets GENMIX_STATE_DIR."


def _use_state_dir(data_dir: Path | None) -> None:
    if data_dir is not None:
        os.environ["GENMIX_STATE_DIR"] = str(data_dir.expanduser().resolve())
        from core.settings import get_settings

        get_settings.cache_clear()


def _logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=DATA_DIR_HELP
)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@data_dir_option
@click.option("--no-worker", is_flag=True, help="Run only the API (workers run elsewhere: `genmix worker`).")
@click.option("--workers", default=1, show_default=True, type=int, help="API processes.")
@click.option(
    "--server",
    type=click.Choice(["granian", "uvicorn"]),
    default="granian",
    show_default=True,
    help="HTTP server for the ASGI app.",
)
@click.option("--log-level", default="info", show_default=True)
def serve_command(
    host: str, port: int, data_dir: Path | None, no_worker: bool, workers: int, server: str, log_level: str
) -> None:
    """Run the REST API; with no configuration, an embedded single-machine service with one local worker."""
    _use_state_dir(data_dir)
    _logging(log_level)
    from cli.embedded import serve
    from core.settings import get_settings

    serve(get_settings(), host=host, port=port, workers=workers, with_worker=not no_worker, log_level=log_level,
          server=server)  # fmt: skip


@click.command("worker")
@click.option("--queues", default="cpu", show_default=True, help="Comma-separated: cpu, gpu or both.")
@click.option("--concurrency", default=None, type=int, help="Jobs at once (default GENMIX_WORKER_CONCURRENCY, 1).")
@click.option("--name", default=None, help="Celery node name (default genmix-<queues>-<pid>@<host>).")
@data_dir_option
@click.option("--log-level", default="info", show_default=True)
def worker_command(
    queues: str, concurrency: int | None, name: str | None, data_dir: Path | None, log_level: str
) -> None:
    """Run a Celery worker: prefork, one job per child process, late acks, prefetch 1.

    A GPU machine runs one ``--queues gpu`` worker per GPU (``CUDA_VISIBLE_DEVICES``); CUDA is only touched
    inside tasks. A machine without CUDA serves ``cpu``.
    """
    _use_state_dir(data_dir)
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = set(wanted) - {"cpu", "gpu"}
    if unknown or not wanted:
        raise click.BadParameter(f"queues must be cpu and/or gpu, got {queues!r}")
    _logging(log_level)
    from workers.celery_app import celery_app, settings

    for warning in queue_warnings(wanted, settings.default_queue):
        logging.getLogger("genmix.worker").warning(warning)
    settings.ensure_dirs()
    if settings.is_sqlite:
        from cli.embedded import prepare_database

        prepare_database(settings)
    argv = [
        "worker",
        "--queues", ",".join(wanted),
        "--pool", "prefork",
        "--concurrency", str(concurrency or settings.worker_concurrency),
        "--max-tasks-per-child", "1",
        "--prefetch-multiplier", "1",
        "--loglevel", log_level.upper(),
        "--hostname", name or f"genmix-{'-'.join(wanted)}-{os.getpid()}@%h",
    ]  # fmt: skip
    if settings.is_embedded_broker:
        argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    celery_app.worker_main(argv)


def queue_warnings(queues: list[str], default_queue: str) -> list[str]:
    """What a worker serving ``queues`` should tell its operator about where jobs go."""
    if default_queue not in queues:
        return [
            f"this worker serves {', '.join(queues)} only, but jobs with `device: auto` (the default) and no `queue` "
            f"go to GENMIX_DEFAULT_QUEUE={default_queue}, which it does not serve: for a deployment without "
            f"{default_queue} workers set GENMIX_DEFAULT_QUEUE={queues[0]} on the API (and here)"
        ]
    return []


def describe_database(url: str) -> str:
    """The database a command used, as an operator recognises it (never the password)."""
    if url.startswith("sqlite"):
        return f"SQLite {url.split(':///', 1)[-1]}"
    scheme, _, rest = url.partition("://")
    return f"{scheme.split('+')[0]}://{rest.rsplit('@', 1)[-1]}"


@click.group("apikey")
def apikey_group() -> None:
    """Create, list and revoke API keys (stored hashed)."""


@apikey_group.command("create")
@click.option("--name", required=True, help="A label for the key (and the owner, unless --owner is given).")
@click.option("--owner", default=None, help="Owner of the datasets and jobs made with this key.")
@data_dir_option
def apikey_create(name: str, owner: str | None, data_dir: Path | None) -> None:
    """Print a new API key, alone on stdout; it cannot be shown again."""
    _use_state_dir(data_dir)
    from app.security import create_api_key
    from cli.embedded import prepare_database
    from core.db.session import Database
    from core.settings import get_settings

    settings = get_settings()
    prepare_database(settings)
    db = Database(settings.database_url)
    try:
        with db.session() as session:
            key = create_api_key(session, name=name, owner=owner)
    finally:
        db.dispose()
    click.echo(key)
    click.echo(
        f"the key is stored in the database {describe_database(settings.database_url)}: it works only on an API "
        "that uses this database (the same --data-dir, GENMIX_STATE_DIR or GENMIX_DATABASE_URL)",
        err=True,
    )


@apikey_group.command("list")
@data_dir_option
def apikey_list(data_dir: Path | None) -> None:
    """Key ids, names, owners and whether they are revoked (never the keys)."""
    _use_state_dir(data_dir)
    from sqlalchemy import select

    from core.db.orm import ApiKey
    from core.db.session import Database
    from core.settings import get_settings

    db = Database(get_settings().database_url)
    try:
        with db.session() as session:
            for row in session.scalars(select(ApiKey).order_by(ApiKey.created_at)):
                state = "revoked" if row.revoked_at else "active"
                click.echo(f"{row.id}\t{row.name}\t{row.owner}\t{state}\t{row.created_at:%Y-%m-%d %H:%M}")
    finally:
        db.dispose()


@apikey_group.command("revoke")
@click.argument("key_id")
@data_dir_option
def apikey_revoke(key_id: str, data_dir: Path | None) -> None:
    """Revoke a key by id (the part after ``gmx_``); API processes forget it within their key cache time."""
    _use_state_dir(data_dir)
    from app.security import revoke_api_key
    from core.db.session import Database
    from core.settings import get_settings

    db = Database(get_settings().database_url)
    try:
        with db.session() as session:
            if not revoke_api_key(session, key_id=key_id):
                raise click.ClickException(f"no active key {key_id}")
    finally:
        db.dispose()
    click.echo(f"revoked {key_id}", err=True)


@click.group("db")
def db_group() -> None:
    """Database migrations (Alembic)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@data_dir_option
def db_upgrade(revision: str, data_dir: Path | None) -> None:
    """Apply migrations up to REVISION."""
    _use_state_dir(data_dir)
    from core.db import migrate
    from core.settings import get_settings

    settings = get_settings()
    settings.ensure_dirs()
    migrate.upgrade(settings.database_url, revision)
    click.echo(f"database at {migrate.current_revision(settings.database_url)}", err=True)


@db_group.command("downgrade")
@click.option("--revision", default="base", show_default=True)
@data_dir_option
def db_downgrade(revision: str, data_dir: Path | None) -> None:
    """Undo migrations down to REVISION (``base`` drops every table)."""
    _use_state_dir(data_dir)
    from core.db import migrate
    from core.settings import get_settings

    migrate.downgrade(get_settings().database_url, revision)


@click.command("demo")
@data_dir_option
@click.option("--port", default=None, type=int, help="API port (default: a free one).")
@click.option("--keep-running", is_flag=True, help="Leave the service up after the job until Ctrl-C.")
@click.option("--fast", is_flag=True, help="Shorter training (a smoke test, not a meaningful result).")
def demo_command(data_dir: Path | None, port: int | None, keep_running: bool, fast: bool) -> None:
    """Start the embedded service, upload BreastMNIST, run a quick DCGAN GenMix job through the API, show
    progress, print the results and the sample and figure URLs, and stop."""
    from cli.demo import run_demo

    sys.exit(run_demo(data_dir, port=port, keep_running=keep_running, fast=fast))


def register(group: click.Group) -> None:
    """Add the service commands to the ``genmix`` group."""
    for command in (serve_command, worker_command, apikey_group, db_group, demo_command):
        group.add_command(command)
