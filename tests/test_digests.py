"""File digests computed beside the decoder (filedata.digests): the hashing process and its inline
fallback give hashlib's digests, however the data is cut and interleaved; a dead process costs
the digests still due, with a warning, never the run; held-back events keep their order."""

from __future__ import annotations

import array
import gzip
import hashlib
import io
import mmap
import os
import random
import subprocess
from pathlib import Path

import pytest
from oracle import read_pcap_records, tool, write_pcap

from smbwatch.capture.streams import native_path
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.filedata import digests as digests_module
from smbwatch.filedata.digests import (
    READ_SIZE,
    REPLY,
    ChildHashes,
    DigestError,
    DigestProcess,
    DigestService,
    InlineDigests,
    MappedCapture,
    StreamHashes,
)
from smbwatch.filedata.transfers import FileData, Transfers
from smbwatch.options import Options
from smbwatch.pipeline import capture_events

pytestmark = pytest.mark.unit

SMB2_FILES = "suricata-verify/smb2-01/smb2-peter.pcap"


def expected(data: bytes) -> tuple[str, str, str]:
    return (
        hashlib.sha256(data).hexdigest(),
        hashlib.sha1(data).hexdigest(),
        hashlib.md5(data).hexdigest(),
    )


@pytest.mark.parametrize("service", [DigestProcess, InlineDigests])
def test_interleaved_streams_get_their_own_digests(service: type[DigestService]) -> None:
    rng = random.Random(445)
    sizes = [1, 1500, 70_000, READ_SIZE + 12345]
    files = {n: rng.randbytes(rng.choice(sizes)) for n in range(1, 9)}
    files[9] = rng.randbytes(3 * READ_SIZE + 7)  # records cut across many reads of the child
    sent = dict.fromkeys(files, 0)
    digests = service()
    try:
        while any(sent[n] < len(data) for n, data in files.items()):
            number = rng.choice([n for n, data in files.items() if sent[n] < len(data)])
            size = rng.choice([1, 13, 1448, 65536, 300_000])
            data = files[number]
            digests.data(number, data, sent[number], min(sent[number] + size, len(data)))
            sent[number] += size
        digests.data(10, b"abandoned", 0, 9)
        digests.abandon(10)
        for number in files:
            digests.finish(number)
        digests.finish(11)  # never sent a byte: no stream to give digests for
        assert all(digests.take(n) == expected(data) for n, data in files.items())
        assert digests.take(11) is None
    finally:
        digests.close()


def test_the_oldest_streams_are_forgotten_beyond_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digests_module, "MAX_STREAMS", 3)
    hashes = StreamHashes()
    for number in range(1, 5):
        hashes.update(number, b"x")
    assert hashes.finish(1) == (digests_module.FORGOTTEN, hashes.none)
    digests = tuple(bytes.fromhex(h) for h in expected(b"x"))
    assert hashes.finish(4) == (digests_module.HASHED, digests)


def test_the_child_hashes_md5_on_a_thread_and_answers_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The child's hashing, md5 on a thread of its own: each finished stream is answered with
    hashlib's three digests in the order finished, through more data than may wait for the
    thread at once; a forgotten stream and an unreadable one are answered as such."""
    monkeypatch.setattr(digests_module, "MAX_STREAMS", 4)  # streams 1, 2, 4, 5 (3 is lost)
    rng = random.Random(5)
    waiting = digests_module.MAX_BATCHES * digests_module.BATCH_SIZE
    files = {n: rng.randbytes(rng.randrange(waiting // 4, waiting // 2)) for n in range(1, 6)}
    replies = io.BytesIO()
    hashes = ChildHashes(replies)
    hashes.lose(3)  # a piece the child could not read: no digests for stream 3
    sent = dict.fromkeys(files, 1)
    for number, data in files.items():  # begun in this order: 1 is the oldest
        hashes.update(number, data[:1])
    while any(sent[n] < len(data) for n, data in files.items()):
        number = rng.choice([n for n, data in files.items() if sent[n] < len(data)])
        piece = files[number][sent[number] : sent[number] + rng.choice((100, 1448, 65536))]
        hashes.update(number, bytearray(piece))
        sent[number] += len(piece)
    hashes.update(6, b"one stream too many: the oldest (1) is forgotten")
    order = [5, 3, 1, 2, 4]
    for number in order:
        hashes.finish(number)
    hashes.abandon(6)
    hashes.close()
    answered = list(REPLY.iter_unpack(replies.getvalue()))
    assert [stream for stream, *_ in answered] == order
    for stream, status, *digests in answered:
        if stream == 3:
            assert status == digests_module.UNREADABLE
        elif stream == 1:
            assert status == digests_module.FORGOTTEN
        else:
            assert status == digests_module.HASHED
            assert tuple(d.hex() for d in digests) == expected(files[stream])


def test_a_dead_hashing_process_costs_only_the_digests_due() -> None:
    digests = DigestProcess()
    digests.data(1, b"data", 0, 4)
    digests.finish(1)
    assert digests.take(1) == expected(b"data")
    digests.child.kill()
    digests.child.wait()
    digests.data(2, b"more", 0, 4)
    digests.finish(2)
    with pytest.raises(DigestError):
        digests.take(2)
    digests.close()


def test_transfers_settle_a_close_without_digests_when_the_process_died() -> None:
    diagnostics = Diagnostics()
    transfers = Transfers(Options(), diagnostics)
    files = transfers.tracker()
    file = FileData(0)
    header = 8
    files.new_message(True)
    files.data(True, file, 0, 4, bytes(header) + b"MZ\x90\x00", header, 0, 1000, 1)
    service = transfers.digests()
    assert isinstance(service, DigestProcess)
    service.child.kill()
    service.child.wait()
    (event,) = files.report(file, SmbEvent(time=0, source="network", action="close"))
    assert transfers.settle(event)
    assert event.sha256 is None and event.magic == "PE" and event.bytes_seen == 4
    assert diagnostics.counts["file_hash_failed"] == 1
    transfers.close()


def test_events_held_for_their_digests_keep_their_order(shared_data: Path) -> None:
    capture = str(shared_data / SMB2_FILES)
    plain = list(capture_events(capture, Diagnostics(), options=Options(hashes=())))
    hashed = list(capture_events(capture, Diagnostics(), options=Options()))
    assert [(e.source_ref, e.action) for e in hashed] == [(e.source_ref, e.action) for e in plain]
    assert sum(1 for e in hashed if e.sha256) >= 15


def test_a_forgotten_stream_costs_its_hash_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(digests_module, "MAX_STREAMS", 1)
    diagnostics = Diagnostics()
    transfers = Transfers(Options(), diagnostics)
    transfers._digests = InlineDigests()  # in this process, where the bound can be lowered
    files = transfers.tracker()
    header = 8
    opened = [FileData(0), FileData(0)]
    for frame, file in enumerate(opened, 1):
        files.new_message(True)
        files.data(True, file, 0, 4, bytes(header) + b"MZ\x90\x00", header, 0, frame, frame)
    events = [
        files.report(f, SmbEvent(time=0, source="network", action="close"))[0] for f in opened
    ]
    assert all(transfers.settle(event) for event in events)
    assert events[0].sha256 is None and events[1].sha256 == expected(b"MZ\x90\x00")[0]
    assert diagnostics.counts["file_hash_abandoned"] == 1
    transfers.close()


def test_bytes_in_the_mapped_capture_are_read_there_by_the_child(tmp_path: Path) -> None:
    """Pointers into the capture file (mapped by both processes) and bytes sent down the pipe,
    interleaved in one stream and across streams, give hashlib's digests."""
    rng = random.Random(139)
    path = tmp_path / "capture.pcap"
    path.write_bytes(rng.randbytes(2 * READ_SIZE))
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as capture:
        digests = DigestProcess(capture, file.fileno())
        try:
            streams: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
            for _ in range(3000):
                number = rng.choice((1, 2))
                start = rng.randrange(len(capture) - 1500)
                stop = start + rng.choice((1, 60, 1448))
                if rng.random() < 0.7:
                    digests.data(number, capture, start, stop)  # by reference
                    streams[number] += capture[start:stop]
                else:
                    piece = rng.randbytes(stop - start)
                    digests.data(number, piece, 0, len(piece))
                    streams[number] += piece
            for start in range(0, 3 * digests_module.MAX_RUN, 3):  # runs longer than a record
                digests.data(1, capture, start, start + 2)
                streams[1] += capture[start : start + 2]
            for number in streams:
                digests.finish(number)
            assert all(digests.take(n) == expected(bytes(d)) for n, d in streams.items())
        finally:
            digests.close()


def test_bytes_the_child_cannot_read_cost_that_file_only(tmp_path: Path) -> None:
    """The capture shrank after it was mapped: a pointer past the end the child sees costs the
    digests of that stream (DigestError, a counted warning upstream), not the others'."""
    path = tmp_path / "capture.pcap"
    path.write_bytes(bytes(range(256)) * 64)
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as capture:
        os.truncate(path, 4096)
        digests = DigestProcess(capture, file.fileno())
        try:
            digests.data(1, capture, 8192, 9000)
            digests.data(1, capture, 0, 100)  # the stream stays lost
            digests.data(2, capture, 0, 1000)
            for number in (1, 2):
                digests.finish(number)
            with pytest.raises(DigestError, match="could not read the capture"):
                digests.take(1)
            assert digests.take(2) == expected((bytes(range(256)) * 4)[:1000])
        finally:
            digests.close()


def test_digests_do_not_depend_on_how_the_capture_is_stored(
    shared_data: Path, tmp_path: Path
) -> None:
    """A plain pcap or pcapng is hashed where its bytes lie; compressed, every byte goes down
    the pipe: the same digests on the same events."""
    capture = shared_data / SMB2_FILES
    pcapng = tmp_path / "capture.pcapng"
    subprocess.run([tool("editcap"), "-F", "pcapng", str(capture), str(pcapng)], check=True)
    compressed = tmp_path / "capture.pcap.gz"
    compressed.write_bytes(gzip.compress(capture.read_bytes()))

    def digests(path: Path) -> list[tuple[str, str | None, str | None]]:
        events = capture_events(str(path), Diagnostics(), options=Options())
        return [(e.action, e.path, e.sha256) for e in events]

    found = digests(capture)
    assert sum(1 for _, _, sha256 in found if sha256) >= 15
    assert digests(pcapng) == found
    assert digests(compressed) == found


def _pointers(*numbers: int) -> memoryview:
    """Pointers as a record carries them: (offset, length) pairs of unsigned 64-bit numbers."""
    return memoryview(array.array("Q", numbers))


@pytest.mark.parametrize("native", [True, False])
def test_the_child_hands_back_the_capture_pages_behind_it(tmp_path: Path, native: bool) -> None:
    """Memory stays flat however large the capture: the pages the records have passed are
    handed back, so the resident part of the mapped file stays near ``RELEASE_EVERY`` (the
    pieces copied by the native path or joined from Python slices)."""
    path = tmp_path / "capture.pcap"
    size = 6 * digests_module.RELEASE_EVERY
    with path.open("wb") as file:
        file.truncate(size)  # sparse: the test costs no disk
    with path.open("rb") as file:
        capture = MappedCapture(file.fileno())
        assert (capture.native is not None) is native_path()
        if not native:
            capture.native = None
        before = _resident_file_kib()
        for offset in range(0, size, 64 * mmap.PAGESIZE):  # a record: 64 pieces, a page apart
            at = [n for page in range(64) for n in (offset + page * mmap.PAGESIZE, 8)]
            gathered = capture.gather(_pointers(*at))
            assert gathered is not None
            assert b"".join(gathered) == bytes(8 * 64)  # each page is read, so resident
        grown_mib = (_resident_file_kib() - before) / 1024
        assert grown_mib < 2 * digests_module.RELEASE_EVERY / (1 << 20), grown_mib
        assert capture.released >= size - 2 * digests_module.RELEASE_EVERY
        assert capture.gather(_pointers(0, 8, size - 4, 8)) is None  # past the end of the file
        assert capture.gather(_pointers(2**64 - 8, 16)) is None  # and past 64 bits


def test_the_native_gather_reads_what_python_slices_read(shared_data: Path) -> None:
    """The hashing process's two ways of reading pieces of the capture give the same bytes:
    pieces of every size across a real capture, in any order, overlapping, empty."""
    path = (
        shared_data / "otrf" / "empire_psexec_dcerpc_tcp_svcctl_WORKSTATION5_2020-09-20121608.cap"
    )
    content = path.read_bytes()
    size = len(content)
    chosen = random.Random(15)
    with path.open("rb") as file:
        native, slices = MappedCapture(file.fileno()), MappedCapture(file.fileno())
        assert native.native is not None  # the native path is built for the tests
        slices.native = None
        for _ in range(200):
            at = []
            for _ in range(chosen.randrange(1, 300)):
                offset = chosen.randrange(size)
                at += [offset, chosen.randrange(min(3000, size - offset + 1))]
            from_c, from_python = native.gather(_pointers(*at)), slices.gather(_pointers(*at))
            assert from_c is not None and from_python is not None
            expected = b"".join(content[o : o + n] for o, n in zip(at[::2], at[1::2], strict=True))
            assert b"".join(from_c) == b"".join(from_python) == expected


def _resident_file_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    raise AssertionError("no RssFile in /proc/self/status")


def test_reordered_and_retransmitted_segments_keep_the_digests(
    shared_data: Path, tmp_path: Path
) -> None:
    """Segments out of order are held and delivered as copies, retransmissions trimmed, the
    rest hashed where it lies in the capture: the mix gives each file the same digests.
    Only neighbours of one direction change places: a response is never captured before its
    request."""
    capture = shared_data / SMB2_FILES
    linktype, records = read_pcap_records(capture)
    assert linktype == 1  # Ethernet, IPv4: the TCP ports at a fixed offset

    def direction(frame: bytes) -> bytes:
        return frame[34:38]  # source and destination port

    rng = random.Random(1448)
    shuffled = list(records)
    for i in range(len(shuffled) - 1):
        if direction(shuffled[i][2]) == direction(shuffled[i + 1][2]) and rng.random() < 0.3:
            shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
    for i in sorted(rng.sample(range(len(shuffled)), len(shuffled) // 10), reverse=True):
        shuffled.insert(i + 1, shuffled[i])  # a retransmission
    path = tmp_path / "shuffled.pcap"
    write_pcap(path, linktype, shuffled)

    def digests(path: Path) -> list[str]:
        events = capture_events(str(path), Diagnostics(), options=Options())
        return sorted(e.sha256 for e in events if e.sha256)

    found = digests(capture)
    assert len(found) >= 15
    assert digests(path) == found
