"""Record store: durable writes, crash recovery, full disks, listing and export."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cadr_device import durable
from cadr_device.errors import RecordError
from cadr_device.records import (
    CAPTURE_ID_PATTERN,
    INCOMPLETE_DIR,
    INDEX_NAME,
    RECORD_NAME,
    RecordStore,
    new_capture_id,
)

KILL_ROUNDS = 20


def _record(capture_id: str | None = None, **extra: object) -> dict[str, object]:
    return {"capture_id": capture_id or new_capture_id(), "status": "ok", "source": "a.jpg",
            "model_id": "cadr-test@0.0.1", "probability": 0.5, **extra}


def _check_consistent(root: Path) -> list[dict[str, object]]:
    """Assert every index entry points at a whole record whose files match their sha256."""
    store = RecordStore(root)
    entries = store.list()
    raw = (root / INDEX_NAME).read_bytes() if (root / INDEX_NAME).exists() else b""
    assert raw == b"" or raw.endswith(b"\n")
    for line in raw.splitlines():
        json.loads(line)

    indexed = set()
    for entry in entries:
        record = store.read(entry)
        assert record["capture_id"] == entry["capture_id"]
        folder = (root / str(entry["path"])).parent
        for name, facts in record["files"].items():
            data = (folder / name).read_bytes()
            assert hashlib.sha256(data).hexdigest() == facts["sha256"], name
        assert not list(folder.glob(f"{durable.TEMP_PREFIX}*"))
        indexed.add(folder)

    on_disk = {p.parent for p in root.glob("*-*-*/*/" + RECORD_NAME)}
    assert on_disk == indexed
    for folder in root.glob("*-*-*/*"):
        assert folder in indexed, f"{folder} is neither indexed nor moved to incomplete/"
    return entries


def test_capture_ids_sort_by_time() -> None:
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 12, 4, 20, 15, 0, 123000, tzinfo=UTC)
    ids = [new_capture_id(start + timedelta(milliseconds=n * 7)) for n in range(50)]
    assert ids == sorted(ids)
    assert ids[0].startswith("20261204T201500.123Z-")
    assert all(CAPTURE_ID_PATTERN.match(i) for i in ids)


def test_write_list_read_round_trip(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "records")
    path = store.write(_record(), {"still.jpg": b"jpeg bytes", "annotated.jpg": b"more"})

    entries = store.list()
    assert len(entries) == 1
    record = store.read(entries[0])
    assert record["status"] == "ok"
    assert record["files"]["still.jpg"]["sha256"] == hashlib.sha256(b"jpeg bytes").hexdigest()
    assert path == tmp_path / "records" / entries[0]["path"]
    assert (path.parent / "still.jpg").read_bytes() == b"jpeg bytes"


def test_files_and_folders_are_private(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "records")
    path = store.write(_record(), {"still.jpg": b"x"})

    for file in (path, path.with_name("still.jpg"), tmp_path / "records" / INDEX_NAME):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    for folder in (path.parent, path.parent.parent, tmp_path / "records"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


@pytest.mark.parametrize("capture_id", ["../escape", "20261204T201500Z", "", "a/b"])
def test_write_rejects_invalid_capture_id(tmp_path: Path, capture_id: str) -> None:
    store = RecordStore(tmp_path)
    with pytest.raises(ValueError, match="invalid capture id"):
        store.write({"capture_id": capture_id}, {})


@pytest.mark.parametrize("name", ["../x.jpg", "sub/x.jpg", RECORD_NAME, ".hidden"])
def test_write_rejects_invalid_file_name(tmp_path: Path, name: str) -> None:
    store = RecordStore(tmp_path)
    with pytest.raises(ValueError, match="invalid record file name"):
        store.write(_record(), {name: b"x"})


def test_write_rejects_duplicate_capture_id(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    capture_id = new_capture_id()
    store.write(_record(capture_id), {})
    with pytest.raises(ValueError, match="already has a record"):
        store.write(_record(capture_id), {})
    assert len(store.list()) == 1


def test_torn_index_line_is_tolerated_and_repaired(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.write(_record(), {})
    second = store.write(_record(), {})
    index = tmp_path / INDEX_NAME
    whole = index.read_bytes()
    index.write_bytes(whole[:-10])  # a crash cut the last append short

    assert len(store.list()) == 1

    reopened = RecordStore(tmp_path)
    assert index.read_bytes().endswith(b"\n")
    entries = reopened.list()
    assert [e["path"] for e in entries][-1] == second.relative_to(tmp_path).as_posix()
    assert len(entries) == 2


def test_unreadable_middle_line_is_skipped(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.write(_record(), {})
    with (tmp_path / INDEX_NAME).open("ab") as f:
        f.write(b"{not json\n")
    store.write(_record(), {})
    assert len(store.list()) == 2


def test_folder_without_record_moves_to_incomplete(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.write(_record(), {})
    capture_id = new_capture_id()
    orphan = tmp_path / f"{capture_id[:4]}-{capture_id[4:6]}-{capture_id[6:8]}" / capture_id
    orphan.mkdir(parents=True)
    (orphan / "still.jpg").write_bytes(b"half a capture")

    RecordStore(tmp_path)

    assert not orphan.exists()
    assert (tmp_path / INCOMPLETE_DIR / capture_id / "still.jpg").read_bytes() == b"half a capture"


def test_record_without_index_line_is_indexed(tmp_path: Path) -> None:
    store = RecordStore(tmp_path)
    store.write(_record(), {})
    path = store.write(_record(), {"still.jpg": b"x"})
    index = tmp_path / INDEX_NAME
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(lines[0])  # the crash came after record.json, before the index

    entries = RecordStore(tmp_path).list()

    assert len(entries) == 2
    assert entries[1]["capture_id"] == path.parent.name


WRITER = r"""
import os, random, sys
from pathlib import Path
from cadr_device.records import RecordStore, new_capture_id
store = RecordStore(Path(sys.argv[1]))
rng = random.Random(int(sys.argv[2]))
print("ready", flush=True)
while True:
    files = {name: os.urandom(rng.randint(0, 200_000)) for name in ("still.jpg", "annotated.jpg")}
    store.write({"capture_id": new_capture_id(), "status": "ok", "source": "a.jpg",
                 "model_id": "cadr-test@0.0.1"}, files)
"""


def test_sigkill_never_leaves_half_records(tmp_path: Path) -> None:
    root = tmp_path / "records"
    rng = random.Random(1)
    total_before = 0

    for round_number in range(KILL_ROUNDS):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root), str(round_number)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        assert writer.stdout is not None
        assert writer.stdout.readline() == b"ready\n"
        try:
            writer.wait(timeout=rng.uniform(0.01, 0.4))
        except subprocess.TimeoutExpired:
            writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
        assert writer.returncode == -signal.SIGKILL, writer.stderr.read() if writer.stderr else ""

        # Every record.json on disk is whole JSON, even before recovery runs.
        for record_path in root.glob("*-*-*/*/" + RECORD_NAME):
            json.loads(record_path.read_bytes())

        entries = _check_consistent(root)
        assert len(entries) >= total_before
        total_before = len(entries)

    assert total_before > 0


def test_append_line_rolls_back_short_write(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "lines.jsonl"
    durable.append_line(index, b'{"a":1}\n')
    real_write = os.write

    def short_write(descriptor: int, data: bytes) -> int:
        return real_write(descriptor, bytes(data)[:3])

    # Simulates a disk that fills in the middle of the append.
    monkeypatch.setattr(durable.os, "write", short_write)
    with pytest.raises(OSError) as raised:
        durable.append_line(index, b'{"b":2}\n')
    monkeypatch.undo()

    assert raised.value.errno == errno.ENOSPC
    assert index.read_bytes() == b'{"a":1}\n'


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB tmpfs; skipped where mounting is not permitted."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mount = shutil.which("mount")
    umount = shutil.which("umount")
    if os.geteuid() != 0 or mount is None or umount is None:
        pytest.skip("mounting a 1 MiB tmpfs needs root and mount(8)")
    mounted = subprocess.run([mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True, timeout=30, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {mounted.stderr.strip()}")
    yield mount_point
    subprocess.run([umount, str(mount_point)], capture_output=True, timeout=30, check=True)


def test_free_space_check_refuses_capture(tiny_filesystem: Path) -> None:
    store = RecordStore(tiny_filesystem / "records")  # keeps 32 MiB free by default

    with pytest.raises(RecordError, match="disk is full") as raised:
        store.write(_record(), {"still.jpg": b"x" * 1000})

    assert "not saved" in str(raised.value)
    assert store.list() == []
    assert not list((tiny_filesystem / "records").glob("*-*-*/*"))


def test_enospc_during_write_leaves_nothing(tiny_filesystem: Path) -> None:
    store = RecordStore(tiny_filesystem / "records", min_free_bytes=0)
    kept = store.write(_record(), {"still.jpg": b"small"})

    with pytest.raises(RecordError, match="disk is full") as raised:
        store.write(_record(), {"still.jpg": os.urandom(600_000),
                                "annotated.jpg": os.urandom(600_000)})

    assert "was not saved" in str(raised.value)
    folders = list((tiny_filesystem / "records").glob("*-*-*/*"))
    assert folders == [kept.parent]
    assert not list(kept.parent.glob(f"{durable.TEMP_PREFIX}*"))
    assert len(_check_consistent(tiny_filesystem / "records")) == 1

    # The store keeps working once the capture fits again.
    store.write(_record(), {"still.jpg": b"small again"})
    assert len(store.list()) == 2


def test_list_and_export_at_scale(tmp_path: Path) -> None:
    count = 400
    store = RecordStore(tmp_path / "records", min_free_bytes=0)
    written = [store.write(_record(), {"still.jpg": str(n).encode()}) for n in range(count)]

    entries = store.list()
    assert len(entries) == count
    assert [e["capture_id"] for e in entries] == [p.parent.name for p in written]
    assert [e["capture_id"] for e in entries] == sorted(e["capture_id"] for e in entries)

    dest = tmp_path / "usb"
    assert store.export(dest) == count
    exported = RecordStore(dest).list()
    assert [e["capture_id"] for e in exported] == [e["capture_id"] for e in entries]
    sample = exported[count // 2]
    assert (dest / sample["path"]).with_name("still.jpg").read_bytes() == str(count // 2).encode()

    assert store.export(dest) == count  # a second export rewrites nothing and loses nothing
    assert len(RecordStore(dest).list()) == count


def test_unencodable_field_raises_record_error(tmp_path: Path) -> None:
    store = RecordStore(tmp_path / "records")
    # os.fsdecode turns the undecodable bytes of a file name into lone surrogates.
    record = _record(source=os.fsdecode(b"\x8a\xb3.jpg"))

    with pytest.raises(RecordError, match="cannot be stored as JSON"):
        store.write(record, {})

    assert store.list() == []
