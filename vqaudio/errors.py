"""Exceptions that mean "the user gave us something wrong", and :class:`TrainingError`.

The CLI turns any :class:`UserError` into one line on stderr and exit code 2, a :class:`TrainingError`
into one line and exit code 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input: a missing file, bad audio, a bad config key..."""


class ConfigError(UserError, ValueError):
    """An invalid configuration value or an unknown configuration key."""


class AudioError(UserError):
    """Audio that cannot be read or is not usable (empty, NaN/Inf, truncated...)."""


class CheckpointError(UserError):
    """A checkpoint or run directory that cannot be loaded."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite steps in a row, or another rank failed)."""
