"""Errors shared by the science modules; torch-free, so the API process can catch them too."""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset could not be loaded; the message names the file and what is wrong."""
