"""Shares of a capture's connections (``capture.flows``, ``capture_events(flow_share=...)``):
the events of the N shares together are the capture's, each event in the share its 4-tuple's
CRC-32 names, and what the capture says besides (damage, warnings) is said once.

The flow hash is recomputed here from the events' own endpoints, as the documentation of
``capture.flows`` defines it (zlib's CRC-32 of the two endpoints, address bytes then port, the
lesser first), with none of smbwatch's code.
"""

from __future__ import annotations

import ipaddress
import json
import zlib
from collections import Counter
from pathlib import Path

import pytest
from hostile_support import RPC_OVER_TCP, SMB2_CAPTURE
from oracle import read_pcap_records, write_pcap

from smbwatch.capture.flows import FlowShare, flow_hash, flow_key, flow_share_of
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.pipeline import capture_events

pytestmark = pytest.mark.unit

CAPTURE_SUFFIXES = (".pcap", ".cap", ".pcapng")


def corpus_captures(shared_data: Path) -> list[Path]:
    found = sorted(p for p in shared_data.rglob("*") if p.suffix in CAPTURE_SUFFIXES)
    assert len(found) >= 20, "the shared corpus is incomplete"
    return found


def share_of(event: SmbEvent, count: int) -> int:
    """The share of an event's connection, by the documented definition."""
    ends = sorted(
        ipaddress.ip_address(address).packed + port.to_bytes(2, "big")
        for address, port in ((event.src_ip, event.src_port), (event.dst_ip, event.dst_port))
    )
    return zlib.crc32(ends[0] + ends[1]) % count


def lines(events: list[SmbEvent]) -> Counter[str]:
    return Counter(json.dumps(event.to_dict(), sort_keys=True) for event in events)


def split(capture: Path, count: int) -> tuple[list[list[SmbEvent]], list[Diagnostics]]:
    shares, said = [], []
    for index in range(count):
        diagnostics = Diagnostics()
        shares.append(list(capture_events(str(capture), diagnostics, flow_share=(index, count))))
        said.append(diagnostics)
    return shares, said


def check_split(capture: Path, count: int) -> list[list[SmbEvent]]:
    """The shares' events and warnings together are the whole capture's."""
    whole_said = Diagnostics()
    whole = list(capture_events(str(capture), whole_said))
    shares, said = split(capture, count)
    assert lines([event for share in shares for event in share]) == lines(whole), capture
    for index, share in enumerate(shares):
        assert all(share_of(event, count) == index for event in share), capture
    total: Counter[str] = Counter()
    for diagnostics in said:
        total.update(diagnostics.counts)
    assert total == whole_said.counts, capture
    assert sum(len(d.damaged_inputs) for d in said) == len(whole_said.damaged_inputs)
    return shares


@pytest.mark.parametrize("count", [2, 3])
def test_the_shares_of_every_corpus_capture_are_the_capture(shared_data: Path, count: int) -> None:
    for capture in corpus_captures(shared_data):
        check_split(capture, count)


@pytest.fixture(scope="module")
def many_connections(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus' SMB2 session 24 times over, each copy from a client port of its own, then a
    DCE/RPC-over-TCP conversation: many connections for the shares to divide."""
    linktype, records = read_pcap_records(SMB2_CAPTURE)
    frames = []
    for copy in range(24):
        port = (30000 + copy).to_bytes(2, "big")
        for seconds, micros, frame in records:
            if frame[36:38] == b"\x01\xbd":  # to port 445: the client's port is the source
                frame = frame[:34] + port + frame[36:]
            elif frame[34:36] == b"\x01\xbd":
                frame = frame[:36] + port + frame[38:]
            frames.append((seconds + copy, micros, frame))
    rpc_linktype, rpc_records = read_pcap_records(RPC_OVER_TCP)
    assert rpc_linktype == linktype
    frames.extend(rpc_records)
    path = tmp_path_factory.mktemp("flows") / "many.pcap"
    write_pcap(path, linktype, frames)
    return path


def test_every_share_of_many_connections_gets_its_part(many_connections: Path) -> None:
    shares = check_split(many_connections, 4)
    assert all(len({event.src_port for event in share}) >= 2 for share in shares)
    rpc = [index for index, share in enumerate(shares) for e in share if e.dst_port not in (445,)]
    assert rpc, "the DCE/RPC-over-TCP conversation is in one of the shares"


def test_the_flow_hash_is_the_documented_one() -> None:
    client, server = bytes([10, 0, 0, 7]), bytes([10, 0, 0, 1])
    to_server = flow_key(client, server, 50123, 445)
    to_client = flow_key(server, client, 445, 50123)
    expected = zlib.crc32(server + (445).to_bytes(2, "big") + client + (50123).to_bytes(2, "big"))
    assert flow_hash(to_server) == flow_hash(to_client) == expected
    six = ipaddress.ip_address("fe80::1").packed, ipaddress.ip_address("fe80::2").packed
    key = flow_key(six[1], six[0], 445, 60000)
    assert flow_share_of(key, 7) == zlib.crc32(six[0] + b"\xea\x60" + six[1] + b"\x01\xbd") % 7
    with pytest.raises(ValueError):
        FlowShare(2, 2)
