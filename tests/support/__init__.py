"""Test support written once: data slices, process handling, a running ``genmix serve``, cancel hooks.

Importable as ``support`` from every test (pytest puts ``tests/`` on ``sys.path``, because
``tests/conftest.py`` lies in a folder without ``__init__.py``) and as ``tests.support`` from a script that
puts the repository root on ``sys.path`` (``bench/``). The modules import each other relatively, so both
names work; none of them imports pytest, torch or the service packages at import time.

- ``support.data``: the BreastMNIST slices (``first_per_class``, ``breast_slice``).
- ``support.processes``: ``free_port``, ``stop_process``, ``wait_http``, ``clean_env``, ``GenmixServe``.
- ``support.hooks``: ``stop_after``, a ``should_stop`` that cancels after a number of steps.
"""
