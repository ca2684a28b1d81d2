"""Ids to join on: ``conn_id`` (one per TCP connection, alike from every sensor) and ``file_key``
(one per opened file instance). tshark is the oracle for the connections and their opens."""

from __future__ import annotations

import ipaddress
import random
import struct
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import shared_dir
from oracle import tshark_fields

from smbwatch.capture.tcp import SYN, connection_id, opening
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.pipeline import iter_events

pytestmark = pytest.mark.oracle

OTRF = shared_dir() / "data" / "otrf"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lateral-movement.pcap"


def events_of(path: Path) -> list[SmbEvent]:
    return list(iter_events([str(path)], Diagnostics()))


def client_isns(capture: Path) -> dict[tuple[str, int, str, int], int]:
    """The initial sequence number of every connection whose SYN the capture has (tshark)."""
    rows = tshark_fields(
        capture,
        "tcp.flags.syn == 1 && tcp.flags.ack == 0",
        ["ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.seq_raw"],
    )
    return {(a, int(p), b, int(q)): int(seq) for a, p, b, q, seq in rows}


def test_conn_id_is_the_4_tuple_and_the_clients_initial_sequence_number() -> None:
    capture = next(OTRF.glob("empire_psexec*_WORKSTATION5_*.cap"))
    isns = client_isns(capture)
    seen = set()
    for event in events_of(capture):
        four = (event.src_ip, event.src_port, event.dst_ip, event.dst_port)
        isn = isns.get(four)  # type: ignore[arg-type]
        assert event.conn_id == connection_id(*four, isn)  # type: ignore[arg-type]
        seen.add((four, isn is not None))
    # the SMB connection to the DC began before the capture; svcctl over TCP and the endpoint
    # mapper are taken up at their BIND, whose sequence number gives the SYN's all the same
    assert (("172.18.39.5", 56575, "172.18.38.5", 445), False) in seen
    assert (("172.18.39.5", 56608, "172.18.39.6", 49726), True) in seen
    assert (("172.18.39.5", 56607, "172.18.39.6", 135), True) in seen


def test_addresses_are_written_as_the_standard_library_writes_them() -> None:
    """The text of the addresses that go into ``conn_id`` and every event (IPv4 is written
    without ``ipaddress``, which a scan of many connections paid for)."""
    rng = random.Random(445)
    edges = [
        bytes(4),
        b"\xff" * 4,
        bytes([10, 0, 0, 1]),
        bytes([192, 168, 100, 9]),
        bytes(16),
        b"\xfe\x80" + bytes(13) + b"\x01",
        bytes(10) + b"\xff\xff" + bytes([172, 18, 39, 5]),  # IPv4-mapped
        b"\x20\x01\x0d\xb8" + bytes(4) + b"\x00\x01" + bytes(6),
    ]
    for raw in edges + [rng.randbytes(rng.choice((4, 16))) for _ in range(4000)]:
        key = raw + raw[::-1] + struct.pack("!HH", 50123, 445)
        _, _, _, (client, _, server, _, _) = opening(key, 50123, 445, 1, SYN)
        assert client == str(ipaddress.ip_address(raw))
        assert server == str(ipaddress.ip_address(raw[::-1]))


def test_two_sensors_give_one_conn_id_per_connection() -> None:
    for attack in ("empire_psexec", "empire_wmi"):
        by_sensor = []
        for sensor in ("WORKSTATION5", "WORKSTATION6"):
            capture = next(OTRF.glob(f"{attack}*_{sensor}_*.cap"))
            by_sensor.append(
                {(e.src_port, e.dst_port): e.conn_id for e in events_of(capture) if e.conn_id}
            )
        shared = by_sensor[0].keys() & by_sensor[1].keys()
        assert len(shared) >= 2
        assert all(by_sensor[0][k] == by_sensor[1][k] for k in shared)
        assert all(by_sensor[0][k].startswith("C") for k in shared)


def test_file_key_is_one_per_open_and_follows_its_file_id_to_the_close() -> None:
    events = events_of(EXAMPLE)
    # tshark: one CREATE (SMB2) or NT_CREATE_ANDX (SMB1) response with a FileId per open
    smb2 = tshark_fields(EXAMPLE, "smb2.cmd == 5 && smb2.flags.response == 1", ["smb2.fid"])
    smb1 = tshark_fields(EXAMPLE, "smb.cmd == 0xa2 && smb.flags.response == 1", ["smb.fid"])
    opened = [row for row in [*smb2, *smb1] if row[0]]
    openers = ("CREATE", "SMB_COM_NT_CREATE_ANDX")
    opens = [e for e in events if e.command in openers and e.action in ("open", "create")]
    assert len(opens) == len(opened) > 10
    assert len({e.file_key for e in opens}) == len(opens)  # every open its own key
    instances: dict[str, set[str]] = defaultdict(set)
    current: dict[tuple[str, str], str] = {}
    for event in events:
        if event.file_id is None:
            assert event.file_key is None
            continue
        where = (event.conn_id or "", event.file_id)
        if event.command in openers:
            current[where] = event.file_key or ""
        assert event.file_key == current[where]  # the capture shows every open
        instances[event.file_key].add(event.file_id)
    assert all(len(ids) == 1 for ids in instances.values())
    closes = {e.file_key for e in events if e.action == "close"}
    assert closes <= {e.file_key for e in opens}
