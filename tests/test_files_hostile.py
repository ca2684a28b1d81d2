"""Hostile file data: real captures with lying WRITE/READ fields and corrupted bytes. A lie costs
that file's hash (or that message), never an exception, never another file; whatever is
extracted is exactly what its name says."""

from __future__ import annotations

import dataclasses
import hashlib
import random
import struct
from pathlib import Path

import pytest
from files_helpers import summaries
from oracle import read_pcap_records, write_pcap
from smb2_wire import EXAMPLE, endpoints_of, feed, wire_messages

from smbwatch.diagnostics import Diagnostics
from smbwatch.filedata.transfers import Transfers
from smbwatch.options import Options
from smbwatch.pipeline import capture_events
from smbwatch.sinks.extract import FileExtractor
from smbwatch.smb.smb2 import Smb2Decoder

pytestmark = pytest.mark.oracle

SMB2_01 = "suricata-verify/smb2-01/smb2-peter.pcap"
WRITE_LENGTH_AT, WRITE_DATA_OFFSET_AT = 64 + 4, 64 + 2  # MS-SMB2 2.2.21
LIES = [
    (WRITE_LENGTH_AT, "<I", 0xFFFFFFFF),
    (WRITE_LENGTH_AT, "<I", 0),
    (WRITE_DATA_OFFSET_AT, "<H", 0),
    (WRITE_DATA_OFFSET_AT, "<H", 0xFFFF),
    (64 + 8, "<Q", 0xFFFFFFFFFFFFFFFF),  # Offset
]


@pytest.mark.parametrize("lie", LIES, ids=lambda lie: f"{lie[0]}={lie[2]:#x}")
def test_lying_writes_cost_only_their_files_hash(shared_data: Path, lie: tuple) -> None:
    capture = shared_data / SMB2_01
    at, layout, value = lie
    diagnostics = Diagnostics()
    transfers = Transfers(Options(), diagnostics)
    (endpoints,) = endpoints_of(capture).values()
    decoder = Smb2Decoder(endpoints, diagnostics, files=transfers)
    lied_about = set()
    events = []
    for message in wire_messages(capture):
        data = message.data
        if message.from_client and data[12] == 0x09:  # a WRITE request
            lied_about.add(data[64 + 16 : 64 + 32].hex())
            end = at + struct.calcsize(layout)
            message = dataclasses.replace(
                message, data=data[:at] + struct.pack(layout, value) + data[end:]
            )
        events.extend(feed(decoder, message))
    events.extend(decoder.finish())
    transfers.close()  # every digest still due is now on its event
    honest = summaries(events)
    assert transfers.held == 0
    uploads = [event for (file_id, direction), event in honest.items() if direction == "upload"]
    assert all(event.sha256 is None for event in uploads if event.file_id in lied_about)
    downloads = [event for (_, direction), event in honest.items() if direction == "download"]
    assert sum(1 for event in downloads if event.sha256) >= 15  # the reads were not touched


@pytest.mark.parametrize(
    "capture",
    [SMB2_01, "suricata-verify/filestore-filecontainer-smb1-data-offset/input.pcap", "example"],
)
def test_corrupted_captures_extract_only_true_files(
    shared_data: Path, tmp_path: Path, capture: str
) -> None:
    source = EXAMPLE if capture == "example" else shared_data / capture
    linktype, records = read_pcap_records(source)
    rng = random.Random(capture)
    extracted = 0
    for round_ in range(4):
        damaged = []
        for seconds, micros, frame in records:
            if len(frame) > 100 and rng.random() < 0.05:
                frame = bytearray(frame)
                for _ in range(rng.randrange(1, 8)):
                    frame[rng.randrange(54, len(frame))] = rng.randrange(256)
                frame = bytes(frame)
            damaged.append((seconds, micros, frame))
        pcap = tmp_path / f"damaged{round_}.pcap"
        write_pcap(pcap, linktype, damaged)
        extract = tmp_path / f"files{round_}"
        options = Options(extract=FileExtractor(extract))
        events = list(capture_events(str(pcap), Diagnostics(), options=options))
        hashes = {event.sha256 for event in events if event.sha256}
        names = {path.name for path in extract.iterdir()}
        assert names == hashes | {f"{digest}.json" for digest in hashes}
        for digest in hashes:
            assert hashlib.sha256((extract / digest).read_bytes()).hexdigest() == digest
        extracted += len(hashes)
    assert extracted  # some files survived the damage: the check above was not vacuous
