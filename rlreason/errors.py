"""User-facing errors.

`RLReasonError` and its subclasses carry a one-line message that names the file, key or line at
fault and what was expected. The CLI prints the message (no traceback) and exits with status 2.
"""

from __future__ import annotations


class RLReasonError(Exception):
    """Base class for errors caused by the user's input rather than by a bug."""


class ConfigError(RLReasonError, ValueError):
    """An experiment config (file, key or value) is invalid."""


class RegistryError(RLReasonError, KeyError):
    """An unknown or duplicate component name, or a bad component parameter."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(RLReasonError, ValueError):
    """A data file or line is malformed (the message names file:line)."""


class RunInterrupted(RLReasonError):
    """The run was stopped by Ctrl-C after checkpointing; the message says how to resume."""

    exit_code = 130
    prefix = "rlreason: "  # not an error of the user's input
