"""Where bundles are published: a folder (a path or `file:///path`) or an OCI registry
(`oci://host[:port]/repository[:tag]`), parsed from the text a user gives."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from zoo.errors import UsageError

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_REPOSITORY = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


@dataclass(frozen=True)
class FolderTarget:
    path: Path

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True)
class OciTarget:
    host: str
    repository: str
    tag: str | None
    plain_http: bool

    @property
    def reference(self) -> str:
        return f"{self.host}/{self.repository}" + (f":{self.tag}" if self.tag else "")

    def with_tag(self, tag: str) -> OciTarget:
        return OciTarget(self.host, self.repository, tag, self.plain_http)

    def __str__(self) -> str:
        return f"oci://{self.reference}"


def parse_target(text: str, plain_http: bool = False) -> FolderTarget | OciTarget:
    """`oci://host[:port]/repo[:tag]`, `file:///path` or a plain path."""
    if text.startswith("oci://"):
        rest = text[len("oci://") :]
        host, _, path = rest.partition("/")
        if not host or not path:
            raise UsageError(
                f"{text}: expected oci://HOST[:PORT]/REPOSITORY[:TAG], e.g. oci://127.0.0.1:5000/zoo:1.0.0."
            )
        repository, tag = path, None
        last = path.rsplit("/", 1)[-1]
        if ":" in last:
            repository, tag = path.rsplit(":", 1)
        if "@" in path:
            raise UsageError(f"{text}: digests are not supported here; name a tag (the bundle version).")
        if not _REPOSITORY.match(repository):
            raise UsageError(
                f"{text}: repository {repository!r} is not a valid OCI repository name (lower-case letters, digits, "
                f"'.', '_', '-', separated by '/')."
            )
        if tag is not None and not _TAG.match(tag):
            raise UsageError(f"{text}: tag {tag!r} is not a valid OCI tag.")
        hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return OciTarget(host, repository, tag, plain_http or hostname in LOOPBACK)
    if text.startswith("file://"):
        parsed = urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise UsageError(f"{text}: file:// targets must be local (file:///path).")
        return FolderTarget(Path(unquote(parsed.path)))
    if "://" in text:
        raise UsageError(
            f"{text}: unknown target; expected a folder, file:///path or oci://host:port/repository:tag."
        )
    return FolderTarget(Path(text))
