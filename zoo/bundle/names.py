"""What every part of a bundle agrees on: its file names, version and name rules, time stamps,
safe relative paths, and the error that names the first file that differs."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from zoo.errors import UsageError, ZooError

BUNDLE_JSON = "bundle.json"
SUMS = "SHA256SUMS"
SIGNATURE = "bundle.sig"
MODELS_DIR = "models"
VERSION_PATTERN = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z][0-9A-Za-z.\-]*)?$")
BUNDLE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._\-]*$")
CHUNK = 1 << 20


class BundleCheckError(ZooError):
    """A bundle failed a check; `file` names the first file that differs (relative to the bundle)."""

    def __init__(self, message: str, file: str | None = None):
        super().__init__(message)
        self.file = file


def check_version(version: str) -> str:
    if not VERSION_PATTERN.match(version or ""):
        raise UsageError(
            f"--version: expected a semantic version such as 1.0.0 or 1.2.0-rc.1 (it is also the OCI tag), "
            f"got {version!r}."
        )
    return version


def bundle_dir_name(name: str, version: str) -> str:
    return f"{name}-{version}"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any, origin: str) -> int:
    try:
        stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{origin}: field created: expected an ISO-8601 time, got {value!r}.") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp())


def relative_files(root: Path) -> list[str]:
    """Every regular file under root as sorted posix paths; links and special files are refused."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise BundleCheckError(
                    f"{root}: {rel} is a symbolic link; bundles hold regular files only.", rel
                )
            if name in filenames and not path.is_file():
                raise BundleCheckError(f"{root}: {rel} is not a regular file.", rel)
        found += [(Path(dirpath) / n).relative_to(root).as_posix() for n in filenames]
    return sorted(found)


def is_safe_relative(path: str) -> bool:
    """A relative posix path that stays inside the folder it is relative to."""
    pure = PurePosixPath(path)
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in path


def safe_relative(path: str, origin: str) -> str:
    if not is_safe_relative(path):
        raise BundleCheckError(f"{origin}: unsafe path {path!r} (absolute or with '..').", path)
    return PurePosixPath(path).as_posix()


def version_key(version: str) -> tuple[tuple[int, ...], bool, str]:
    """Sort key for semantic versions: 1.2.0-rc.1 before 1.2.0 before 1.10.0."""
    core, _, pre = version.partition("-")
    numbers = tuple(int(p) if p.isdigit() else 0 for p in core.split("."))
    return numbers, pre == "", pre
