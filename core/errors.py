"""Errors a user can act on.

A :class:`SuiteError` carries a one-paragraph message meant for the person at the
terminal: what was wrong (naming the file, record or key), what was expected and
what to do. The CLI prints it without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "PluginError", "SuiteError"]


class SuiteError(Exception):
    """A mistake in the user's input or environment, with a message that says how to fix it."""


class ConfigError(SuiteError):
    """An unknown key, a wrong type or an out-of-range value in a config."""


class DataError(SuiteError):
    """Missing, malformed or inconsistent data on disk."""


class PluginError(SuiteError):
    """A plugin failed to import or register (raised only with ``SUITE_STRICT_PLUGINS=1``)."""
