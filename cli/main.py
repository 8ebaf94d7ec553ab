"""The ``genmix`` command. Heavy libraries load inside the commands that need them, so ``--help`` is instant."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="genmix")
def main() -> None:
    """GenMix: generative + mixture augmentation for small, imbalanced medical image sets."""


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
