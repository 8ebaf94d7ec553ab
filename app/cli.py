"""The ``genmix`` command. Heavy libraries load inside the commands that need them, so ``--help`` is instant."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genmix")
def main() -> None:
    """GenMix: generative + mixture augmentation for small, imbalanced medical image sets."""


def _register_all() -> None:
    from app import cli_science

    cli_science.register(main)
    try:
        from app import cli_service
    except ImportError:  # the service commands are optional in a science-only checkout
        return
    cli_service.register(main)


_register_all()

if __name__ == "__main__":
    main()
