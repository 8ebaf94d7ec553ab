"""The ``genmix`` command. Heavy libraries load inside the commands that need them, so ``--help`` is instant."""

from __future__ import annotations

import sys

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genmix")
@click.pass_context
def main(ctx: click.Context) -> None:
    """GenMix: generative + mixture augmentation for small, imbalanced medical image sets."""
    if ctx.invoked_subcommand and not ctx.resilient_parsing and not {"--help", "-h"} & set(sys.argv):
        from cli.malloc import ensure_malloc_tunables, is_program_entry

        if is_program_entry():  # run, worker: the Docker image's glibc malloc tunables (cli/malloc.py)
            ensure_malloc_tunables(ctx.invoked_subcommand)


def _register_all() -> None:
    from cli import science

    science.register(main)
    try:
        from cli import service
    except ImportError:  # the service commands are optional in a science-only checkout
        return
    service.register(main)


_register_all()

if __name__ == "__main__":
    main()
