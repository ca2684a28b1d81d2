"""File digests computed beside the decoder (smb.digests): the hashing process and its inline
fallback give hashlib's digests, however the data is cut and interleaved; a dead process costs
the digests still due, with a warning, never the run; held-back events keep their order."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.options import Options
from smbwatch.pipeline import capture_events
from smbwatch.smb import digests as digests_module
from smbwatch.smb.digests import (
    READ_SIZE,
    DigestError,
    DigestProcess,
    DigestService,
    InlineDigests,
    StreamHashes,
)
from smbwatch.smb.files import FileData, Transfers

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
            digests.data(number, files[number][sent[number] : sent[number] + size])
            sent[number] += size
        digests.data(10, b"abandoned")
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
    assert hashes.finish(1) == digests_module.LOST
    assert hashes.finish(4) == tuple(bytes.fromhex(h) for h in expected(b"x"))


def test_a_dead_hashing_process_costs_only_the_digests_due() -> None:
    digests = DigestProcess()
    digests.data(1, b"data")
    digests.finish(1)
    assert digests.take(1) == expected(b"data")
    digests.child.kill()
    digests.child.wait()
    digests.data(2, b"more")
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
    plain = list(capture_events(capture, Diagnostics(), options=Options(hash_files=False)))
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
