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


class NoSpace(ZooError):
    """The disk holding *path* is full: the operation stops, and nothing partial is left behind."""

    def __init__(self, path: object, detail: str = ""):
        super().__init__(f"no space left on {path}{detail}; free some space and run again.")


def is_disk_full(exc: BaseException) -> bool:
    """Whether an error says the disk, a quota or the file size limit is exhausted: an OSError by
    its code, or a framework's own error around one (they keep only the text)."""
    import errno

    codes = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
    if isinstance(exc, OSError) and exc.errno in codes:
        return True
    return "No space left on device" in str(exc)
