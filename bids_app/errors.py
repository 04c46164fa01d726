"""Exceptions that the command line turns into one clear error line."""

from __future__ import annotations

from os import PathLike


class StrokeDFCError(Exception):
    """An error in the user's input or configuration.

    The command line prints ``strokedfc: error: <file>: <problem>`` and exits
    non-zero, without a traceback unless ``-v`` is given.

    Parameters
    ----------
    problem : str
        What is wrong, in one sentence.
    path : str or PathLike, optional
        The file (or directory) the problem is about.
    """

    def __init__(self, problem: str, path: str | PathLike | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.path:
            return f"{self.path}: {self.problem}"
        return self.problem


class InputError(StrokeDFCError):
    """A problem with an input file (missing, malformed, inconsistent)."""


class ConfigError(StrokeDFCError):
    """A problem with options or the configuration file."""
