"""A catalog folder is untrusted input: what a hostile manifest can no longer do.

Labels and every other file a manifest names resolve inside the catalog folder; YAML alias
bombs, deep nesting and huge files are refused at load time with exit 2 naming the file; reserved
or dot file names, non-UTF-8 labels and credentials in URLs get clear answers. A seeded fuzz run
mutates every manifest of the catalog and accepts only exit 0 or exit 2 naming the file.
"""

from __future__ import annotations

import copy
import json
import random
import resource
import shutil
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from tests.conftest import MANIFESTS, run_zoo
from zoo.describe import details
from zoo.errors import ManifestError
from zoo.manifest import load_manifest

SECRET = "root:$6$not-really-a-hash:19000:0:99999:7:::"


def _catalog(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(MANIFESTS, target)
    return target


def _edit(catalog: Path, name: str, change) -> Path:
    path = catalog / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A private file outside the catalog folder, standing in for /etc/shadow."""
    path = tmp_path / "private" / "shadow"
    path.parent.mkdir()
    path.write_text(SECRET + "\n")
    return path


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink"])
def test_labels_file_outside_the_catalog_is_refused(tmp_path, secret_file, kind):
    catalog = _catalog(tmp_path)
    if kind == "absolute":
        where = str(secret_file)
    elif kind == "dotdot":
        where = "labels/../../private/shadow"
    else:
        (catalog / "labels" / "evil.txt").symlink_to(secret_file)
        where = "labels/evil.txt"
    path = _edit(catalog, "aclnet", lambda d: d["labels"].update(file=where))
    with pytest.raises(ManifestError, match="labels.file") as caught:
        load_manifest(path)
    assert str(path) in caught.value.message and SECRET not in caught.value.message

    result = run_zoo("info", "aclnet", "--json", "--manifests", str(catalog))
    assert result.returncode == 2, result.stderr
    assert "aclnet.yaml" in result.stderr and "labels.file" in result.stderr
    assert SECRET not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_labels_link_inside_the_catalog_still_works(tmp_path):
    catalog = _catalog(tmp_path)
    (catalog / "labels" / "alias.txt").symlink_to(catalog / "labels" / "aclnet_53cl.txt")
    path = _edit(catalog, "aclnet", lambda d: d["labels"].update(file="labels/alias.txt"))
    assert load_manifest(path).read_labels()[:1] == load_manifest(MANIFESTS / "aclnet.yaml").read_labels()[:1]


def test_labels_that_are_not_utf8_are_bad_input(tmp_path):
    catalog = _catalog(tmp_path)
    (catalog / "labels" / "aclnet_53cl.txt").write_bytes(b"dog\n\xff\xfe cat\n")
    result = run_zoo("info", "aclnet", "--json", "--manifests", str(catalog))
    assert result.returncode == 2, result.stderr
    assert "not UTF-8" in result.stderr and "labels.file" in result.stderr
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("bad", [".", "..", ".hidden", "SOURCES.json", "sources.JSON"])
def test_dot_and_reserved_file_names_are_refused(tmp_path, bad):
    catalog = _catalog(tmp_path)
    path = _edit(catalog, "aclnet", lambda d: d["files"][0].update(name=bad))
    with pytest.raises(ManifestError, match=r"files\[0\]\.name"):
        load_manifest(path)
    result = run_zoo("download", "-n", "aclnet", "--manifests", str(catalog), "-o", str(tmp_path / "out"))
    assert result.returncode == 2 and "files[0].name" in result.stderr, result.stderr


def _bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines)


@pytest.mark.parametrize("field", ["network.args", "audio.features.params"])
def test_alias_bomb_is_refused_quickly_naming_the_file(tmp_path, field):
    catalog = _catalog(tmp_path)
    path = catalog / "aclnet.yaml"
    indent = "    " if field == "network.args" else "      "
    bomb = "\n".join(indent + line for line in _bomb().splitlines())
    text = path.read_text(encoding="utf-8")
    if field == "network.args":
        text = text.replace("\nnetwork:\n", "\nnetwork:\n  args:\n" + bomb + "\n", 1)
        assert "a9:" in text
    else:
        text += "\n# bomb\n"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert "features" not in data["audio"]
        text = text.replace(
            "\naudio:\n", "\naudio:\n  features:\n    kind: log-mel\n    params:\n" + bomb + "\n", 1
        )
    path.write_text(text, encoding="utf-8")
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(ManifestError, match="alias bomb") as caught:
            load_manifest(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5 and peak < 50 << 20
    assert str(path) in caught.value.message
    for command in (["info", "aclnet"], ["download", "-n", "aclnet", "-o", str(tmp_path / "out")]):
        result = run_zoo(*command, "--manifests", str(catalog))
        assert result.returncode == 2 and "aclnet.yaml" in result.stderr, result.stderr


def test_deep_nesting_and_huge_manifests_are_refused(tmp_path):
    catalog = _catalog(tmp_path)
    path = catalog / "aclnet.yaml"
    original = path.read_text(encoding="utf-8")
    path.write_text(original + "\nx: " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="nesting is too deep"):
        load_manifest(path)
    path.write_text(original.replace("description:", "description: " + "x" * (2 << 20) + "\nold:", 1))
    with pytest.raises(ManifestError, match="more than the"):
        load_manifest(path)
    path.write_text(original + "\nloop: &loop [*loop]\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="refers to itself"):
        load_manifest(path)


def test_a_long_description_is_shown_bounded(tmp_path):
    catalog = _catalog(tmp_path)
    _edit(catalog, "aclnet", lambda d: d.update(description="word " * 150_000))
    started = time.monotonic()
    result = run_zoo("info", "aclnet", "--manifests", str(catalog))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20
    assert "more characters; --json shows all" in result.stdout
    assert len(result.stdout) < 100_000


def test_password_in_a_source_url_is_never_shown(tmp_path):
    catalog = _catalog(tmp_path)

    def change(data):
        data["files"][0]["sources"] = [{"url": "https://alice:hunter2@example.invalid/model.onnx"}]

    path = _edit(catalog, "aclnet", change)
    from zoo.bundle.assemble import _without_passwords

    bundled = json.dumps(_without_passwords(load_manifest(path).model_dump(mode="json")))
    assert "hunter2" not in bundled and "alice:***@example.invalid" in bundled
    for args in (["info", "aclnet", "--json"], ["info", "aclnet"]):
        result = run_zoo(*args, "--manifests", str(catalog))
        assert result.returncode == 0, result.stderr
        assert "hunter2" not in result.stdout and "alice:***@example.invalid" in result.stdout


# -- fuzzing ----------------------------------------------------------------------------------------

PATH_TRICKS = [
    "/etc/passwd",
    "../../../../etc/passwd",
    "labels/../../x.txt",
    "C:\\Windows\\win.ini",
    "labels/\x00.txt",
    "",
    ".",
    "..",
    "SOURCES.json",
    "file:///etc/shadow",
]
WEIRD_VALUES = [
    None,
    0,
    -1,
    10**40,
    1.5e308,
    True,
    "",
    "\u202e\ufeff\U0001f600",
    [],
    {},
    [[[]]],
    {"a": {"b": []}},
]


def _leaves(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _leaves(value, (*path, index))
    yield path


def _set(data, path, value):
    target = data
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _delete(data, path):
    target = data
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]


def _mutate(text: str, rng: random.Random) -> str:
    data = yaml.safe_load(text)
    kind = rng.choice(["delete", "type", "unicode", "duplicate", "nesting", "bomb", "path", "bytes"])
    paths = [p for p in _leaves(data) if p]
    if kind == "delete":
        _delete(data, rng.choice(paths))
    elif kind == "type":
        _set(data, rng.choice(paths), copy.deepcopy(rng.choice(WEIRD_VALUES)))
    elif kind == "unicode":
        text_paths = [p for p in paths if isinstance(_get(data, p), str)]
        chars = "".join(
            chr(rng.choice([rng.randrange(32, 0x2FFF), rng.randrange(0x1F000, 0x1FAFF)])) for _ in range(12)
        )
        _set(data, rng.choice(text_paths), chars)
    elif kind == "duplicate":
        key = rng.choice(list(data))
        return text + f"\n{key}: {rng.choice(['x', '1', '[]'])}\n"
    elif kind == "nesting":
        depth = rng.choice([10, 70, 500])
        return text + "\nnested: " + "[" * depth + "]" * depth + "\n"
    elif kind == "bomb":
        where = rng.choice(["network", "audio"])
        return text.replace(
            f"\n{where}:\n", f"\n{where}:\n  extra:\n" + _indent(_bomb(rng.randrange(4, 10)), 4) + "\n", 1
        )
    elif kind == "path":
        trick = rng.choice(PATH_TRICKS)
        target = rng.choice(["labels.file", "files.name", "files.url", "files.member"])
        if target == "labels.file":
            data["labels"] = {"file": trick, "count": 3}
        elif data.get("files"):
            entry = data["files"][0]
            if target == "files.name":
                entry["name"] = trick
            elif target == "files.url":
                entry["sources"] = [{"url": trick}]
            else:
                entry["sources"][0]["member"] = trick
    else:
        raw = bytearray(text.encode())
        for _ in range(rng.randrange(1, 6)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        return (
            raw.decode("utf-8", errors="surrogateescape")
            .encode("utf-8", "surrogateescape")
            .decode("utf-8", "replace")
        )
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _get(data, path):
    for part in path:
        data = data[part]
    return data


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.splitlines())


def test_fuzzed_manifests_load_or_fail_naming_the_file(tmp_path):
    """At least 300 seeded mutations over every catalog entry: loaded, or a ManifestError naming the file."""
    rng = random.Random(14)
    catalog = _catalog(tmp_path)
    originals = {p.name: p.read_text(encoding="utf-8") for p in sorted(catalog.glob("*.yaml"))}
    per_entry = max(1, -(-320 // len(originals)))
    cases = 0
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for name, text in originals.items():
        path = catalog / name
        for _ in range(per_entry):
            path.write_text(_mutate(text, rng), encoding="utf-8")
            started = time.monotonic()
            try:
                manifest = load_manifest(path)
                assert len(manifest.digest) == 64
                details(manifest)
            except ManifestError as exc:
                assert str(path) in exc.message
            assert time.monotonic() - started < 3, path.read_text()[:500]
            cases += 1
        path.write_text(text, encoding="utf-8")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 256 << 10
    assert cases >= 300


def test_fuzzed_manifests_through_the_command(tmp_path):
    """A sample of the mutations through `zoo info --json`: exit 0, or exit 2 naming the file; never a traceback."""
    rng = random.Random(1414)
    catalog = _catalog(tmp_path)
    names = sorted(p.stem for p in catalog.glob("*.yaml"))
    for number in range(40):
        name = names[number % len(names)]
        path = catalog / f"{name}.yaml"
        original = (MANIFESTS / f"{name}.yaml").read_text(encoding="utf-8")
        path.write_text(_mutate(original, rng), encoding="utf-8")
        result = run_zoo("info", name, "--json", "--manifests", str(catalog))
        assert result.returncode in (0, 2), result.stderr
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr
        if result.returncode == 2:
            assert f"{name}.yaml" in result.stderr, result.stderr
        path.write_text(original, encoding="utf-8")


def test_a_manifest_linked_from_outside_the_catalog_is_refused(tmp_path, secret_file):
    catalog = _catalog(tmp_path)
    outside = tmp_path / "elsewhere" / "evil.yaml"
    outside.parent.mkdir()
    outside.write_text((MANIFESTS / "aclnet.yaml").read_text().replace("name: aclnet", "name: evil", 1))
    (catalog / "evil.yaml").symlink_to(outside)
    result = run_zoo("info", "evil", "--json", "--manifests", str(catalog))
    assert result.returncode == 2 and "link out of the catalog folder" in result.stderr, result.stderr


@pytest.mark.parametrize(
    "field, value",
    [
        ("package", "--index-url=http://127.0.0.1:9/simple"),
        ("version", "1.0 --pre"),
        ("filename", "../x.whl"),
    ],
)
def test_package_index_fields_cannot_become_pip_options(tmp_path, field, value):
    catalog = _catalog(tmp_path)
    path = _edit(catalog, "silero-vad", lambda d: d["files"][0]["sources"][0]["pypi"].update({field: value}))
    with pytest.raises(ManifestError, match=rf"pypi\.{field}"):
        load_manifest(path)


def test_labels_file_size_is_bounded(tmp_path):
    catalog = _catalog(tmp_path)
    with open(catalog / "labels" / "aclnet_53cl.txt", "wb") as handle:
        handle.truncate(17 << 20)
    result = run_zoo("info", "aclnet", "--json", "--manifests", str(catalog))
    assert result.returncode == 2 and "labels.file" in result.stderr and "more than" in result.stderr, (
        result.stderr
    )


def test_list_file_and_retry_base_that_are_not_what_they_say_are_bad_input(tmp_path):
    binary = tmp_path / "names.bin"
    binary.write_bytes(b"\xff\xfe\x00aclnet")
    result = run_zoo("list", "--list", str(binary))
    assert result.returncode == 2 and "--list" in result.stderr and "UTF-8" in result.stderr, result.stderr
    for value in ("nan", "-1", "fast"):
        result = run_zoo(
            "download",
            "-n",
            "aclnet",
            "-o",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "c"),
            env={"ZOO_RETRY_BASE": value},
        )
        assert result.returncode == 2 and "ZOO_RETRY_BASE" in result.stderr, result.stderr
