"""Errors a user can act on.

Every failure caused by input (a manifest, a flag, a file, a server) is raised
as a ZooError: the CLI prints its message as one paragraph and exits with its
code, without a traceback unless --debug is given.
"""

from __future__ import annotations

#: exit codes shared by every command
EXIT_FAILED = 1  # the command ran and found a problem (verification miss, download failure)
EXIT_USAGE = 2  # bad input: manifest, flag, selection


class ZooError(Exception):
    """An error with a user-facing message and an exit code."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class UsageError(ZooError):
    """Bad input from the user: a manifest, a flag, a name."""

    exit_code = EXIT_USAGE


class ManifestError(UsageError):
    """A manifest that does not follow the schema."""
