"""Memory stays bounded by configuration, not by the input: a million TCP connections, and a
DCE/RPC stream over TCP whose calls never send their last fragment.

Both captures are built from real frames of the corpus (an SMB2 NEGOTIATE request, a PsExec
client's DCE/RPC BIND on a dynamic port), their addresses, ports and sequence numbers rewritten;
the command line runs on them in a process of its own whose peak memory the kernel reports.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from hostile_support import MIB, RPC_OVER_TCP, SMB2_CAPTURE, peak_rss, smbwatch
from oracle import read_pcap_records
from scale_support import with_other_traffic

from smbwatch.capture.pcap import read_frames
from smbwatch.capture.streams import TcpStreams
from smbwatch.capture.tcp import IDLE_TIMEOUT, NO_SKIP, Skip, StreamConsumer
from smbwatch.dcerpc.pipe import MAX_CALL_BYTES
from smbwatch.diagnostics import Diagnostics

pytestmark = pytest.mark.unit

PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")
MAX_PEAK = 256 * MIB  # the bound is 300 MB: this is it, with margin


def payload_start(frame: bytes) -> int:
    """Where the TCP payload starts in an Ethernet/IPv4 frame (after any TCP options)."""
    return 34 + (frame[46] >> 4) * 4


def write_frames(path: Path, linktype: int, frames) -> None:
    """A pcap written frame by frame (a million of them do not fit a list comfortably)."""
    with path.open("wb") as out:
        out.write(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for seconds, micros, frame in frames:
            out.write(RECORD.pack(seconds, micros, len(frame), len(frame)))
            out.write(frame)


def with_client(frame: bytes, client: int, port: int) -> bytes:
    """An Ethernet/IPv4/TCP frame from the client, from another client address and port."""
    return (
        frame[:26] + struct.pack("!I", client) + frame[30:34] + struct.pack("!H", port) + frame[36:]
    )


def test_a_million_connections_stay_within_the_bound(tmp_path: Path) -> None:
    """A scan of a million connections, and 100,000 clients that each sent a NEGOTIATE: the
    least recently active connections are closed past the bound, the rest are followed."""
    linktype, records = read_pcap_records(SMB2_CAPTURE)
    negotiate = records[11][2]  # frame 12: the client's SMB2 NEGOTIATE request
    start = payload_start(negotiate)
    assert negotiate[start + 4 : start + 8] == b"\xfeSMB"
    syn = negotiate[:16] + struct.pack("!H", start - 14) + negotiate[18:47] + b"\x02"
    syn += negotiate[48:start]
    scan = tmp_path / "scan.pcap"
    frames = (
        (
            1_600_000_000 + n // 100_000,
            0,
            with_client(syn, 0x0A000000 + n // 50_000, 1024 + n % 50_000),
        )
        for n in range(1_000_000)
    )
    write_frames(scan, linktype, frames)
    clients = tmp_path / "clients.pcap"
    frames = (
        (1_600_000_000, n, with_client(negotiate, 0x0B000000 + n // 50_000, 1024 + n % 50_000))
        for n in range(100_000)
    )
    write_frames(clients, linktype, frames)
    for capture, events in ((scan, 0), (clients, 100_000)):
        run, peak = peak_rss("events", "-f", "jsonl", "--no-hash", "-q", capture)
        run.clean(0)
        assert len(run.stdout.splitlines()) == events  # one negotiate (unanswered) per client
        assert peak < MAX_PEAK, f"{capture.name}: peak {peak >> 20} MiB"


@pytest.mark.parametrize("pure", [False, True])
def test_a_long_capture_is_not_held_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pure: bool
) -> None:
    """The capture is mapped whole, and the pages walked past are handed back (on the native
    path by its page thread, on the Python path by the reader): 390 MB of capture, SMB among
    other traffic, read in a fraction of that."""
    if pure:
        monkeypatch.setenv("SMBWATCH_PURE_PYTHON", "1")
    linktype, records = read_pcap_records(SMB2_CAPTURE)
    capture = tmp_path / "long.pcap"
    write_frames(capture, linktype, with_other_traffic(records, 10, 26_000))
    assert capture.stat().st_size > 360 * MIB
    run, peak = peak_rss("events", "-f", "jsonl", "--no-hash", "-q", "-j", "1", capture)
    alone = smbwatch("events", "-f", "jsonl", "--no-hash", "-q", SMB2_CAPTURE).clean(0)
    assert len(run.clean(0).stdout.splitlines()) == len(alone.stdout.splitlines()) > 10
    assert peak < 128 * MIB, f"peak {peak >> 20} MiB"


class Recorder(StreamConsumer):
    """A connection's consumer that writes down, when it is closed, how many were opened."""

    def __init__(self, port: int, log: list[tuple[str, int, int]]) -> None:
        self.port, self.log = port, log
        log.append(("open", port, 0))

    def data(self, from_client: bool, payload: bytes, time: int, frame: int) -> Skip:
        return NO_SKIP

    def gap(self, from_client: bool, length: int) -> None:
        pass

    def close(self) -> None:
        self.log.append(("close", self.port, sum(1 for what, _, _ in self.log if what == "open")))


@pytest.mark.parametrize("native", [True, False])
def test_idle_connections_are_closed_by_capture_time(
    tmp_path: Path, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three clients each send a NEGOTIATE and fall silent, at 0, 10 and 20 minutes of capture
    time: the first, idle past IDLE_TIMEOUT (15 minutes) when the third speaks, is closed then;
    the others at the end of the capture (a connection that never ends does not stay)."""
    if not native:
        monkeypatch.setenv("SMBWATCH_PURE_PYTHON", "1")
    linktype, records = read_pcap_records(SMB2_CAPTURE)
    negotiate = records[11][2]
    minute = 60
    capture = tmp_path / "idle.pcap"
    frames = [
        (1_600_000_000 + n * 10 * minute, 0, with_client(negotiate, 0x0A000001, 40000 + n))
        for n in range(3)
    ]
    write_frames(capture, linktype, frames)
    assert 10 * minute * 1_000_000 < IDLE_TIMEOUT < 20 * minute * 1_000_000
    log: list[tuple[str, int, int]] = []
    reader = read_frames(str(capture), Diagnostics())
    streams = TcpStreams(
        reader, lambda c, cport, s, sport, isn: Recorder(cport, log), Diagnostics()
    )
    while streams.advance([]):
        pass
    reader.close()
    closes = [(port, opened) for what, port, opened in log if what == "close"]
    assert closes == [(40000, 2), (40001, 3), (40002, 3)]


def test_a_connection_idle_too_long_starts_again(tmp_path: Path) -> None:
    """A client silent for 15.5 minutes speaks again between two sweeps (one ran at 14.9
    minutes, when it had been idle for less than IDLE_TIMEOUT): its old connection is closed
    and a new one opened all the same."""
    linktype, records = read_pcap_records(SMB2_CAPTURE)
    negotiate = records[11][2]
    capture = tmp_path / "again.pcap"
    frames = [
        (1_600_000_000 + seconds, 0, with_client(negotiate, 0x0A000001, port))
        for seconds, port in ((0, 40000), (894, 40001), (930, 40000))
    ]
    write_frames(capture, linktype, frames)
    assert 894 * 1_000_000 < IDLE_TIMEOUT < 930 * 1_000_000
    log: list[tuple[str, int, int]] = []
    reader = read_frames(str(capture), Diagnostics())
    streams = TcpStreams(reader, lambda c, port, s, sport, isn: Recorder(port, log), Diagnostics())
    while streams.advance([]):
        pass
    reader.close()
    assert [entry[:2] for entry in log] == [
        ("open", 40000), ("open", 40001), ("close", 40000), ("open", 40000),
        ("close", 40001), ("close", 40000),
    ]  # fmt: skip


def rpc_frame(template: bytes, seq: int, payload: bytes, port: int) -> bytes:
    """The client's frame ``template`` carrying ``payload`` at ``seq``, from client ``port``."""
    start = payload_start(template)
    total = start - 14 + len(payload)
    frame = template[:16] + struct.pack("!H", total) + template[18:34] + struct.pack("!H", port)
    return frame + template[36:38] + struct.pack("!I", seq) + template[42:start] + payload


def fragment(call_id: int, flags: int, stub: bytes) -> bytes:
    """A DCE/RPC REQUEST PDU (C706 12.6.4.9): context 0, opnum 0, ``flags`` (FIRST=1, LAST=2)."""
    length = 24 + len(stub)
    common = struct.pack("<BBBB4sHHI", 5, 0, 0, flags, b"\x10\x00\x00\x00", length, 0, call_id)
    return common + struct.pack("<IHH", len(stub), 0, 0) + stub


def test_fragments_that_never_end_a_call_stay_bounded(tmp_path: Path) -> None:
    """After the real PsExec conversation, a connection binds the same way and then sends 200 MB
    of fragments of 40 calls, none of them with its last fragment."""
    linktype, records = read_pcap_records(RPC_OVER_TCP)
    bind_frame = records[3][2]  # frame 4: the client's BIND to svcctl on port 49155
    bind = bind_frame[payload_start(bind_frame) :]
    assert bind[:3] == b"\x05\x00\x0b"
    stub = bytes(range(256)) * 16  # 4 KiB a fragment
    frames = list(records)
    seq, port, last = 1, 50000, records[-1][0] + 1
    frames.append((last, 0, rpc_frame(bind_frame, seq, bind, port)))
    seq += len(bind)
    for number in range(50_000):
        call = number % 40
        pdu = fragment(call, 0x01 if number < 40 else 0x00, stub)
        frames.append((last, number, rpc_frame(bind_frame, seq, pdu, port)))
        seq += len(pdu)
    capture = tmp_path / "endless-call.pcap"
    write_frames(capture, linktype, frames)
    assert capture.stat().st_size > 200_000_000
    real = smbwatch("events", "-f", "jsonl", RPC_OVER_TCP).clean(0).events
    run, peak = peak_rss("events", "-f", "jsonl", capture)
    run.clean(0)
    assert run.warned("dcerpc_fragment_limit") == 40 - 16  # 16 calls reassembled at once
    assert run.warned("dcerpc_call_too_large") == 16  # each given up at MAX_CALL_BYTES
    assert MAX_CALL_BYTES * 16 < 20 * MIB
    found = [json.dumps(event, sort_keys=True) for event in run.events]
    for event in real:  # the real calls, all there
        assert json.dumps({**event, "source_file": str(capture)}, sort_keys=True) in found
    assert peak < 100 * MIB, f"peak {peak >> 20} MiB"
