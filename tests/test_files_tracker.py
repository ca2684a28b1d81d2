"""FileTracker on real file bytes (this machine's Python library or executable), fed the way a
decoder feeds it: each WRITE/READ as a message holding the first bytes of its data, the rest in
TCP-sized chunks through ``body``. hashlib over the same bytes is the judge."""

from __future__ import annotations

import hashlib
import random
import sys
import sysconfig
import tracemalloc
from pathlib import Path

import pytest

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.filedata import digests
from smbwatch.filedata.ranges import MAX_RANGES
from smbwatch.filedata.transfers import FileData, FileTracker, Transfers
from smbwatch.options import HASHES, Options
from smbwatch.sinks.extract import FileExtractor

pytestmark = pytest.mark.unit

HEADER = 112  # where the data of an SMB2 WRITE request starts
WINDOW = 512  # data bytes the decoder keeps in the message
CHUNK = 1448  # TCP payload of a 1500-byte MTU
MIB = 1 << 20


def real_file(size: int = 3 * MIB) -> bytes:
    """The first ``size`` bytes of a real binary of this machine (an ELF shared library)."""
    library = Path(
        sysconfig.get_config_var("LIBDIR") or "/", sysconfig.get_config_var("INSTSONAME") or ""
    )
    for candidate in (library, Path(sys.executable).resolve(), Path("/usr/bin/python3")):
        if candidate.is_file() and candidate.stat().st_size >= size:
            return candidate.read_bytes()[:size]
    raise RuntimeError("no binary of 3 MiB found (libpython, python3) for these tests")


REAL = real_file()


def tracker(options: Options | None = None) -> tuple[FileTracker, Transfers, Diagnostics]:
    diagnostics = Diagnostics()
    transfers = Transfers(options or Options(), diagnostics)
    return transfers.tracker(), transfers, diagnostics


def send(
    files: FileTracker,
    file: FileData,
    upload: bool,
    offset: int,
    data: bytes,
    frame: int = 1,
    gap_at: int | None = None,
) -> None:
    """One message carrying ``data`` at ``offset``; ``gap_at``: a lost chunk at that position."""
    msg = bytes(HEADER) + data[:WINDOW]
    rest = data[WINDOW:]
    files.new_message(upload)
    files.data(upload, file, offset, len(data), msg, HEADER, len(rest), frame * 1000, frame)
    for start in range(0, len(rest), CHUNK):
        piece = rest[start : start + CHUNK]
        if gap_at is not None and start <= gap_at < start + CHUNK:
            files.body_gap(upload, len(piece))
        else:
            files.body(upload, piece)


def pieces(data: bytes, size: int) -> list[tuple[int, bytes]]:
    return [(offset, data[offset : offset + size]) for offset in range(0, len(data), size)]


def close(files: FileTracker, file: FileData, end_of_file: int | None = None) -> list[SmbEvent]:
    """The close events of ``file``, with the digests the hashing process computed."""
    closes = files.report(file, SmbEvent(time=0, source="network", action="close"), end_of_file)
    for event in closes:
        assert files.transfers.settle(event)
    return closes


def test_in_order_upload_has_the_files_hashes_and_type() -> None:
    files, transfers, diagnostics = tracker(Options(hashes=HASHES))
    file = FileData(0)
    for frame, (offset, data) in enumerate(pieces(REAL, 65536), 1):
        send(files, file, True, offset, data, frame)
    (event,) = close(files, file)
    assert event.sha256 == hashlib.sha256(REAL).hexdigest()
    assert event.sha1 == hashlib.sha1(REAL).hexdigest()
    assert event.md5 == hashlib.md5(REAL).hexdigest()
    assert event.direction == "upload" and event.magic == "ELF"
    assert event.file_size == event.bytes_seen == len(REAL)
    assert not diagnostics.counts and transfers.held == 0


def test_reads_out_of_order_within_the_bound_still_hash() -> None:
    files, transfers, diagnostics = tracker()
    file = FileData(len(REAL))
    reads = pieces(REAL, 65536)
    rng = random.Random(7)
    for i in range(0, len(reads), 8):  # eight reads outstanding, answered in any order
        window = reads[i : i + 8]
        rng.shuffle(window)
        for offset, data in window:
            send(files, file, False, offset, data)
    (event,) = close(files, file)
    assert event.direction == "download"
    assert event.sha256 == hashlib.sha256(REAL).hexdigest()
    assert not diagnostics.counts and transfers.held == 0


def test_beyond_the_bound_the_hash_is_given_up_but_bytes_seen_stays_exact() -> None:
    files, transfers, diagnostics = tracker(Options(max_held_per_file=MIB))
    file = FileData(0)
    for offset, data in reversed(pieces(REAL, 65536)):
        send(files, file, True, offset, data)
    (event,) = close(files, file)
    assert event.sha256 is None and event.md5 is None
    assert event.bytes_seen == event.file_size == len(REAL)
    assert diagnostics.counts["file_hash_abandoned"] == 1 and transfers.held == 0


def test_the_bound_on_all_files_together() -> None:
    options = Options(max_held_per_file=MIB, max_held_total=MIB + MIB // 2)
    files, transfers, diagnostics = tracker(options)
    first, second = FileData(0), FileData(0)
    head, tail = REAL[:65536], REAL[65536 : 65536 + 800_000]
    send(files, first, True, 65536, tail)  # held: 800 000 bytes
    send(files, second, True, 65536, tail)  # would make 1 600 000 held: over the total
    assert transfers.held == len(tail)
    send(files, first, True, 0, head)
    send(files, second, True, 0, head)
    (one,), (two,) = close(files, first), close(files, second)
    assert one.sha256 == hashlib.sha256(head + tail).hexdigest()
    assert two.sha256 is None and two.bytes_seen == len(head) + len(tail)
    assert diagnostics.counts["file_hash_abandoned"] == 1 and transfers.held == 0


def test_reading_again_is_the_same_file_writing_again_is_not() -> None:
    files, _, _ = tracker()
    download, upload = FileData(len(REAL)), FileData(0)
    for file, upload_direction in ((download, False), (upload, True)):
        send(files, file, upload_direction, 0, REAL[:4096])  # e.g. a preview, then the copy
        for offset, data in pieces(REAL, 65536):
            send(files, file, upload_direction, offset, data)
    (read,), (written,) = close(files, download), close(files, upload)
    assert read.sha256 == hashlib.sha256(REAL).hexdigest() and read.bytes_seen == len(REAL)
    assert written.sha256 is None and written.bytes_seen == len(REAL)


def test_a_lost_segment_leaves_a_hole_and_no_hash() -> None:
    files, _, diagnostics = tracker()
    file = FileData(0)
    for offset, data in pieces(REAL, 65536):
        send(files, file, True, offset, data, gap_at=CHUNK * 3 if offset == 2 * 65536 else None)
    (event,) = close(files, file)
    assert event.file_size == len(REAL) and event.bytes_seen == len(REAL) - CHUNK
    assert event.sha256 is None and event.sha1 is None and event.md5 is None
    assert not diagnostics.counts  # a hole is said by the missing hash, not a warning


@pytest.mark.parametrize("cut", ["start", "end"])
def test_a_file_not_seen_whole_has_no_hash(cut: str) -> None:
    files, _, _ = tracker()
    file = FileData(len(REAL))
    data = REAL[4096:] if cut == "start" else REAL[:-4096]
    send(files, file, False, 4096 if cut == "start" else 0, data)
    (event,) = close(files, file)
    assert event.sha256 is None
    assert event.bytes_seen == len(REAL) - 4096 and event.file_size == len(REAL)
    assert event.magic == (None if cut == "start" else "ELF")


def test_data_both_ways_gives_one_close_event_per_direction() -> None:
    files, _, _ = tracker()
    file = FileData(len(REAL))
    send(files, file, False, 0, REAL)  # read the original
    encrypted = bytes(b ^ 0x5A for b in REAL[:100_000])
    send(files, file, True, 0, encrypted)  # write something else over it
    upload, download = close(files, file, len(REAL))
    assert (upload.direction, download.direction) == ("upload", "download")
    assert download.sha256 == hashlib.sha256(REAL).hexdigest()
    assert upload.sha256 is None and upload.bytes_seen == len(encrypted)
    assert close(files, file) == [SmbEvent(time=0, source="network", action="close")]


def test_no_hash_counts_what_the_messages_announce() -> None:
    files, _, _ = tracker(Options(hashes=()))
    file = FileData(0)
    for offset, data in pieces(REAL, 65536):
        send(files, file, True, offset, data)
        assert not files.routed(True)  # the data is skipped, never offered to body()
    (event,) = close(files, file)
    assert event.sha256 is None and event.magic == "ELF"
    assert event.bytes_seen == event.file_size == len(REAL)


def test_memory_stays_flat_however_large_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    # what waits for a busy hashing process is bounded (32 MiB by default; 1 MiB here)
    monkeypatch.setattr(digests, "MAX_GATHERED", MIB)
    files, _, _ = tracker(Options(hashes=HASHES))
    file = FileData(0)
    block = bytes(random.Random(3).randbytes(1 << 16))
    tracemalloc.start()
    try:
        for i in range(512):  # 32 MiB, written in order
            send(files, file, True, i << 16, block)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (event,) = close(files, file)
    whole = block * 512
    assert event.bytes_seen == 32 * MIB and event.sha256 == hashlib.sha256(whole).hexdigest()
    assert (event.sha1, event.md5) == (
        hashlib.sha1(whole).hexdigest(),
        hashlib.md5(whole).hexdigest(),
    )
    assert peak < 2 * MIB + digests.FLUSH_AT


def test_extraction_keeps_complete_files_only(tmp_path: Path) -> None:
    files, transfers, _ = tracker(Options(extract=FileExtractor(tmp_path)))
    whole, partial = FileData(0), FileData(len(REAL))
    for offset, data in pieces(REAL, 65536):
        send(files, whole, True, offset, data)
    send(files, partial, False, 0, REAL[:100_000])
    assert len(list(tmp_path.glob(".part-*"))) == 2  # both streamed to disk as they came
    (stored,), (dropped,) = close(files, whole), close(files, partial)
    assert dropped.sha256 is None and stored.sha256 == hashlib.sha256(REAL).hexdigest()
    assert (tmp_path / stored.sha256).read_bytes() == REAL
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [stored.sha256, f"{stored.sha256}.json"]
    )  # nothing else: no lock file, no temporary file left
    transfers.close()


def test_hostile_values_cost_nothing_but_that_file() -> None:
    rng = random.Random(445)
    files, transfers, _ = tracker(Options(max_held_per_file=MIB, max_held_total=2 * MIB))
    opened = [FileData(rng.choice([0, 1 << 62, len(REAL)])) for _ in range(4)]
    for _ in range(3000):
        file, upload = rng.choice(opened), rng.random() < 0.5
        offset = rng.choice([0, -1, rng.randrange(1 << 64), rng.randrange(len(REAL))])
        length = rng.choice([0, -5, rng.randrange(1 << 32), rng.randrange(70000)])
        msg = rng.randbytes(rng.randrange(700))
        data_offset = rng.choice([0, HEADER, rng.randrange(1 << 16)])
        follows = rng.randrange(1 << 17)
        files.new_message(upload)
        files.data(upload, file, offset, length, msg, data_offset, follows, 1, 1)
        while files.routed(upload) and rng.random() < 0.95:
            if rng.random() < 0.1:
                files.body_gap(upload, rng.randrange(1, 5000))
            else:
                files.body(upload, REAL[: rng.randrange(1, 3000)])
    for file in opened:
        for event in close(files, file):
            assert event.bytes_seen is not None and event.bytes_seen >= 0
    assert transfers.held == 0


def test_too_many_separate_ranges_are_joined_with_a_warning() -> None:
    files, _, diagnostics = tracker(Options(hashes=()))
    file = FileData(0)
    for i in range(MAX_RANGES + 50):
        send(files, file, True, i * 100, REAL[:10])  # 10 bytes every 100
    (event,) = close(files, file)
    assert diagnostics.counts["file_ranges_joined"] == 1
    assert 10 * (MAX_RANGES + 50) < event.bytes_seen < 100 * (MAX_RANGES + 50)
