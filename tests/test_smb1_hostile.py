"""Hostile and damaged SMB1: real messages from the corpus, cut, looped, overwritten with random
bytes or given absurd counts. A damaged message costs at most its own event, with a counted
warning, never an exception and never the events of the other messages."""

from __future__ import annotations

import random
import struct
from collections import Counter
from pathlib import Path

import pytest
from smb1_support import ENDPOINTS, Message, replay, smb1_connections

from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.smb import smb1
from smbwatch.smb.session import MAX_FILES
from smbwatch.smb.smb1 import Smb1Decoder

pytestmark = pytest.mark.unit

EICAR = "smb-eicar-file-segmentation-random/input.pcap"
FILESTORE = "filestore-filecontainer-smb1-data-offset/input.pcap"
WORDS = 33  # the first parameter word of the first command: header (32) and WordCount


@pytest.fixture(scope="module")
def eicar(shared_data: Path) -> list[Message]:
    (connection,) = smb1_connections(shared_data / "suricata-verify" / EICAR)
    return connection


@pytest.fixture(scope="module")
def filestore(shared_data: Path) -> list[Message]:
    (connection,) = smb1_connections(shared_data / "suricata-verify" / FILESTORE)
    return connection


def keys(events: list[SmbEvent]) -> Counter[tuple[str | None, int | None]]:
    return Counter((e.command, e.source_ref) for e in events)


def lost(clean: list[SmbEvent], damaged: list[SmbEvent]) -> int:
    """How many events of the clean run the damaged run does not have."""
    return sum((keys(clean) - keys(damaged)).values())


def smb1_warnings(diagnostics: Diagnostics) -> int:
    return sum(n for kind, n in diagnostics.counts.items() if kind.startswith("smb1_"))


def with_message(messages: list[Message], index: int, data: bytes) -> list[Message]:
    m = messages[index]
    return [
        *messages[:index],
        Message(m.from_client, data, m.time, m.frame),
        *messages[index + 1 :],
    ]


def first_request(messages: list[Message], command: int) -> int:
    return next(i for i, m in enumerate(messages) if m.from_client and m.data[4] == command)


def test_the_clean_stream_decodes(eicar: list[Message]) -> None:
    events, diagnostics = replay(eicar)
    assert [e.action for e in events] == [
        "negotiate",
        "logon",
        "tree_connect",
        "create",
        "write",
        "close",
        "tree_disconnect",
    ]
    assert not diagnostics.counts


def test_every_truncation_costs_at_most_one_event(eicar: list[Message]) -> None:
    clean, _ = replay(eicar)
    damaged_runs = 0
    for index, message in enumerate(eicar):
        for cut in range(0, len(message.data), 5):
            events, diagnostics = replay(with_message(eicar, index, message.data[:cut]))
            missing = lost(clean, events)
            assert missing <= 1, f"message {index} cut at {cut}: {missing} events lost"
            if missing:
                assert smb1_warnings(diagnostics), f"message {index} cut at {cut}: silent loss"
                damaged_runs += 1
    assert damaged_runs > 50  # the cuts did hit what matters


def test_random_bytes_after_a_valid_header(eicar: list[Message], filestore: list[Message]) -> None:
    rng = random.Random(1)
    for stream in (eicar, filestore[:60]):
        clean, _ = replay(stream)
        for index, message in enumerate(stream):
            for _ in range(4):
                noise = rng.randbytes(rng.choice((1, 7, 40, 300, 2000)))
                events, _ = replay(with_message(stream, index, message.data[:32] + noise))
                assert lost(clean, events) <= 1, f"message {index}"


def test_andx_chains_that_loop_or_leave_the_message(eicar: list[Message]) -> None:
    index = first_request(eicar, 0x75)  # TREE_CONNECT_ANDX, the end of its chain
    message = eicar[index].data
    clean, _ = replay(eicar)
    hostile = {
        "to itself": (0x75, 32),
        "backwards": (0x75, 8),
        "beyond the message": (0x75, 0xFFFF),
        "to the last byte": (0x2F, len(message) - 1),
    }
    for name, (command, offset) in hostile.items():
        data = bytearray(message)
        struct.pack_into("<BxH", data, WORDS, command, offset)
        events, diagnostics = replay(with_message(eicar, index, bytes(data)))
        assert lost(clean, events) == 0, name  # the tree connect itself is still decoded
        assert diagnostics.counts["smb1_andx_chain"] == 1, name


def test_a_long_andx_chain_is_cut_short() -> None:
    """LOGOFF_ANDX blocks (two words, no bytes) chained a thousand times."""
    header = struct.pack("<4sBIBHH8x2xHHHH", b"\xffSMB", 0x74, 0, 0x08, 0xC001, 0, 1, 7, 100, 9)
    blocks = bytearray()
    for n in range(1000):
        following = 32 + 7 * (n + 1)
        blocks += struct.pack("<BBxHH", 2, 0x74, following, 0)
    diagnostics = Diagnostics()
    decoder = Smb1Decoder(ENDPOINTS, diagnostics)
    decoder.message(True, header + bytes(blocks), len(header) + len(blocks), 0, 1)
    events = decoder.finish()
    assert len(events) == smb1.rec.MAX_ANDX_CHAIN
    assert diagnostics.counts["smb1_andx_chain"] == 1


def test_huge_counts_and_offsets(eicar: list[Message], filestore: list[Message]) -> None:
    clean, _ = replay(eicar)
    write = first_request(eicar, 0x2F)
    create = first_request(eicar, 0xA2)
    cases = {
        "WordCount 255": (create, 32, b"\xff"),
        "ByteCount 0xFFFF": (create, WORDS + 2 * eicar[create].data[32], b"\xff\xff"),
        "write DataOffset 0xFFFF": (write, WORDS + 22, b"\xff\xff"),
        "write DataLengthHigh 0xFFFF": (write, WORDS + 18, b"\xff\xff"),
        "NameLength 0xFFFF": (create, WORDS + 5, b"\xff\xff"),
    }
    for name, (index, at, value) in cases.items():
        data = bytearray(eicar[index].data)
        data[at : at + len(value)] = value
        events, _ = replay(with_message(eicar, index, bytes(data)))
        assert lost(clean, events) <= 1, name
    transactions = [i for i, m in enumerate(filestore) if m.from_client and m.data[4] == 0xA0]
    assert transactions
    clean, _ = replay(filestore)
    for index in transactions[:5]:  # NT_TRANSACT totals and offsets at their maximum
        data = bytearray(filestore[index].data)
        struct.pack_into("<II", data, WORDS + 3, 0xFFFFFFFF, 0xFFFFFFFF)
        events, _ = replay(with_message(filestore, index, bytes(data)))
        assert lost(clean, events) <= 1


def test_wanted_never_fails_and_stays_in_bounds(filestore: list[Message]) -> None:
    rng = random.Random(2)
    decoder = Smb1Decoder(ENDPOINTS, Diagnostics())
    for message in filestore[:200]:
        for head in (message.data, message.data[:40], message.data[:32] + rng.randbytes(200)):
            total = len(message.data) + rng.choice((0, 1, 1 << 20, 1 << 24))
            assert 0 <= decoder.wanted(message.from_client, head[:512], total) <= total
        decoder.message(message.from_client, message.data, len(message.data), 0, message.frame)


def test_pending_requests_are_bounded_and_emitted_not_lost(eicar: list[Message]) -> None:
    """Thousands of requests never answered: the table stays bounded, every one is reported."""
    close = eicar[first_request(eicar, 0x04)].data
    diagnostics = Diagnostics()
    decoder = Smb1Decoder(ENDPOINTS, diagnostics)
    events = []
    for mid in range(3000):
        data = bytearray(close)
        struct.pack_into("<H", data, 30, mid)
        events += decoder.message(True, bytes(data), len(data), 0, mid)
        assert decoder._pending_count <= smb1.MAX_PENDING
    events += decoder.finish()
    assert len(events) == 3000
    assert all(e.status is None for e in events)
    assert diagnostics.counts["smb1_state_evicted"] == 3000 - smb1.MAX_PENDING


def test_messages_of_no_use_are_counted_not_raised(eicar: list[Message]) -> None:
    decoder = Smb1Decoder(ENDPOINTS, (diagnostics := Diagnostics()))
    response = next(m for m in eicar if not m.from_client)
    assert decoder.message(True, response.data, len(response.data), 0, 1) == []  # wrong way
    assert decoder.message(True, b"\xffSMB", 4, 0, 2) == []
    assert diagnostics.counts["smb1_malformed"] == 2


def test_open_files_are_bounded(eicar: list[Message]) -> None:
    """Thousands of opens never closed: the file table stays bounded and counts what it drops."""
    index = first_request(eicar, 0xA2)
    request, response = eicar[index].data, eicar[index + 1].data
    assert response[4] == 0xA2 and not eicar[index + 1].from_client
    diagnostics = Diagnostics()
    decoder = Smb1Decoder(ENDPOINTS, diagnostics)
    opens = 0
    for n in range(MAX_FILES + 500):
        mid = struct.pack("<H", n & 0xFFFF)
        fid = struct.pack("<H", n)
        answer = bytearray(response)
        answer[30:32] = mid
        answer[WORDS + 5 : WORDS + 7] = fid  # AndX (4), OplockLevel (1), FID
        decoder.message(True, request[:30] + mid + request[32:], len(request), 0, 2 * n)
        opens += len(decoder.message(False, bytes(answer), len(answer), 0, 2 * n + 1))
        assert len(decoder._files) <= MAX_FILES
    assert opens == MAX_FILES + 500
    assert diagnostics.counts["smb1_state_evicted"] == 500
