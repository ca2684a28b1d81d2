"""The native capture path (``capture/native.pyx``) and the Python one say the same to the byte:
the same events and the same counted warnings, on every capture of the corpus, on the same
traffic in every link layer smbwatch reads, and on hostile frames and files, each of which
costs one packet (or the rest of a damaged file) with the same warning on both.

The link layers and the damage are made here from a real capture (rewritten frame by frame); the
expected events of a re-encapsulated capture are those of the original.
"""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path

import pytest
from hostile_support import PCAPNG, RPC_OVER_TCP, SMB2_CAPTURE, both_paths
from oracle import pcapng, read_pcap_records, write_pcap

from smbwatch.capture.flows import flow_hash, flow_key, flow_share_of
from smbwatch.capture.native import native_flow_hash
from smbwatch.capture.pcap import MAX_RECORD, read_frames
from smbwatch.capture.streams import FrameSegments, TcpStreams
from smbwatch.capture.tcp import IDLE_TIMEOUT, MAX_CONNECTIONS, NO_SKIP, Skip, StreamConsumer
from smbwatch.containers import as_input
from smbwatch.diagnostics import Diagnostics
from smbwatch.options import Options
from smbwatch.pipeline import capture_events, share_events

pytestmark = pytest.mark.unit

CAPTURE_SUFFIXES = (".pcap", ".cap", ".pcapng")
Records = list[tuple[int, int, bytes]]


class Nothing(StreamConsumer):
    def data(self, from_client: bool, payload: bytes, time: int, frame: int) -> Skip:
        return NO_SKIP

    def gap(self, from_client: bool, length: int) -> None:
        pass

    def close(self) -> None:
        pass


def path_of(path: Path) -> str:
    """Which path reads ``path``: the native one (its class) or FrameSegments."""
    reader = read_frames(str(path), Diagnostics())
    try:
        streams = TcpStreams(reader, lambda *_: Nothing(), Diagnostics())
        return type(streams.native or streams.source).__name__
    finally:
        reader.close()


def test_capture_files_take_the_native_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert path_of(SMB2_CAPTURE) == "NativeStreams"
    assert path_of(PCAPNG) == "NativeStreams"
    monkeypatch.setenv("SMBWATCH_PURE_PYTHON", "1")
    assert path_of(SMB2_CAPTURE) == FrameSegments.__name__


def threads() -> int:
    """The threads of this process, as the kernel counts them (the page thread is a C one)."""
    return len(os.listdir("/proc/self/task"))


def test_a_walk_left_early_lets_go_of_its_capture() -> None:
    """The native walk has its pages mapped in and handed back by a thread beside it, which
    holds the mapping while it runs: leaving the events early stops it, so that the capture
    file can be closed (an open view of the mapping would refuse that)."""
    before = threads()
    events = capture_events(str(SMB2_CAPTURE), Diagnostics())
    next(events)
    assert threads() == before + 1
    events.close()
    assert threads() == before
    assert len(list(capture_events(str(SMB2_CAPTURE), Diagnostics()))) > 10
    assert threads() == before  # read to its end


def test_every_corpus_capture_reads_alike(shared_data: Path) -> None:
    captures = sorted(p for p in shared_data.rglob("*") if p.suffix in CAPTURE_SUFFIXES)
    assert len(captures) >= 20
    events = 0
    for capture in captures:
        events += len(both_paths(capture)[0])
    assert events > 1000


def smb2_records() -> tuple[int, Records]:
    linktype, records = read_pcap_records(SMB2_CAPTURE)
    assert linktype == 1
    return linktype, records


def without_source(events: list[str]) -> list[dict]:
    """The events, less what names the file they came from."""
    rows = [json.loads(line) for line in events]
    for row in rows:
        row.pop("source_file", None)
        row.pop("source_format", None)
    return rows


LINK_LAYERS = {
    # link type, and the frame's IPv4 packet (Ethernet's bytes 14 on) behind that link header
    "vlan": (1, lambda f: f[:12] + b"\x81\x00\x00\x05" + f[12:]),
    "qinq": (1, lambda f: f[:12] + b"\x88\xa8\x00\x07\x81\x00\x00\x05" + f[12:]),
    "linux_sll": (113, lambda f: b"\x00\x00\x00\x01\x00\x06" + f[6:12] + b"\x00\x00" + f[12:]),
    "linux_sll2": (
        276,
        lambda f: f[12:14] + b"\x00" * 6 + b"\x00\x01\x00\x06" + f[6:12] + b"\0\0" + f[14:],
    ),
    "raw": (101, lambda f: f[14:]),
    "ipv4": (228, lambda f: f[14:]),
    "null": (0, lambda f: struct.pack("<I", 2) + f[14:]),
    "loop": (108, lambda f: struct.pack(">I", 2) + f[14:]),
}


@pytest.mark.parametrize("layer", sorted(LINK_LAYERS))
def test_every_link_layer_reads_alike(tmp_path: Path, layer: str) -> None:
    linktype, records = smb2_records()
    original = both_paths(SMB2_CAPTURE)
    new_linktype, wrap = LINK_LAYERS[layer]
    capture = tmp_path / f"{layer}.pcap"
    write_pcap(capture, new_linktype, [(s, u, wrap(f)) for s, u, f in records])
    said = both_paths(capture)
    assert len(original[0]) > 10
    assert without_source(said[0]) == without_source(original[0])
    assert said[1] == original[1]


@pytest.mark.parametrize("big", [False, True], ids=["little", "big"])
@pytest.mark.parametrize("tsresol", [6, 9, 0x80 | 20])
def test_pcapng_reads_alike(tmp_path: Path, big: bool, tsresol: int) -> None:
    linktype, records = smb2_records()
    capture = tmp_path / "smb2.pcapng"
    capture.write_bytes(pcapng(records, linktype, big=big, tsresol=tsresol))
    said = both_paths(capture)
    original = both_paths(SMB2_CAPTURE)
    assert len(said[0]) == len(original[0])
    assert [e["action"] for e in without_source(said[0])] == [
        e["action"] for e in without_source(original[0])
    ]


def data_frame(records: Records, nth: int = 0) -> int:
    """The index of the ``nth`` frame from the client that carries SMB (port 445) data."""
    found = [
        i
        for i, (_, _, f) in enumerate(records)
        if len(f) > 80 and f[36:38] == b"\x01\xbd" and len(f) > 34 + (f[46] >> 4) * 4
    ]
    return found[nth]


def with_frame(records: Records, index: int, frame: bytes) -> Records:
    seconds, micros, _ = records[index]
    return records[:index] + [(seconds, micros, frame)] + records[index + 1 :]


def hostile_snaplen(records: Records) -> Records:
    """A frame cut short by the snap length: the IP length says more than was captured."""
    i = data_frame(records, 3)
    return with_frame(records, i, records[i][2][:-20])


def hostile_ip_length(records: Records) -> Records:
    """A bogus IPv4 total length, far beyond the frame."""
    i = data_frame(records, 4)
    frame = records[i][2]
    return with_frame(records, i, frame[:16] + b"\xff\xf0" + frame[18:])


def hostile_tcp_offset(records: Records) -> Records:
    """A TCP data offset that puts the payload past the end of the frame."""
    i = data_frame(records, 2)
    frame = records[i][2]
    total = struct.pack("!H", 40)  # the IP packet ends with the TCP header ...
    return with_frame(records, i, frame[:16] + total + frame[18:46] + b"\xf0" + frame[47:54])


def hostile_fragment(records: Records) -> Records:
    """A first fragment (more fragments) of SMB: counted, not reassembled."""
    i = data_frame(records, 1)
    frame = records[i][2]
    return with_frame(records, i, frame[:20] + b"\x20\x00" + frame[22:])


HOSTILE_FRAMES = {
    # the frame, the warning it costs, the events it may cost (a length that claims 64 KiB
    # more costs what the stream holds in those bytes)
    "snaplen": (hostile_snaplen, "snaplen_cut", 3),
    "ip_length": (hostile_ip_length, "snaplen_cut", 20),
    "tcp_offset": (hostile_tcp_offset, "tcp_gap", 3),  # the segment is dropped: a gap
    "fragment": (hostile_fragment, "ip_fragment_skipped", 3),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FRAMES))
def test_a_hostile_frame_costs_one_packet_alike(tmp_path: Path, case: str) -> None:
    linktype, records = smb2_records()
    mutate, warning, lost = HOSTILE_FRAMES[case]
    capture = tmp_path / f"{case}.pcap"
    write_pcap(capture, linktype, mutate(records))
    events, counts, _, damaged = both_paths(capture)
    assert counts.get(warning) == 1, counts
    assert not damaged
    assert len(both_paths(SMB2_CAPTURE)[0]) - lost <= len(events)


def payload_of(frame: bytes) -> bytes:
    return frame[34 + (frame[46] >> 4) * 4 :]


def with_payload(frame: bytes, payload: bytes) -> bytes:
    """The Ethernet/IPv4/TCP ``frame`` carrying ``payload`` instead (the IP length set)."""
    start = 34 + (frame[46] >> 4) * 4
    return frame[:16] + struct.pack("!H", start - 14 + len(payload)) + frame[18:start] + payload


def reordered(records: Records) -> Records:
    """Two segments of the client's stream swapped: the later one is held until the other."""
    i, j = data_frame(records, 35), data_frame(records, 36)  # one after the other
    out = list(records)
    out[i], out[j] = records[j], records[i]
    return out


def retransmitted(records: Records) -> Records:
    """A segment of the client's stream captured twice."""
    i = data_frame(records, 5)
    return records[: i + 1] + [records[i]] + records[i + 1 :]


def overlapping(records: Records) -> Records:
    """A segment sent again with the next one's bytes: its first part is behind the stream (cut
    off), the rest new; the next one then is a pure retransmission."""
    i, j = data_frame(records, 35), data_frame(records, 36)  # one after the other
    first, second = records[i][2], records[j][2]
    assert struct.unpack("!I", second[38:42])[0] == (
        struct.unpack("!I", first[38:42])[0] + len(payload_of(first))
    )
    both = with_payload(first, payload_of(first) + payload_of(second))
    seconds, micros, _ = records[i]
    return records[: i + 1] + [(seconds, micros, both)] + records[i + 1 :]


@pytest.mark.parametrize("mutate", [reordered, retransmitted, overlapping])
def test_reordered_and_repeated_segments_read_alike(tmp_path: Path, mutate) -> None:
    """Segments out of order, twice or overlapping lose nothing, on either path."""
    linktype, records = smb2_records()
    capture = tmp_path / "mutated.pcap"
    write_pcap(capture, linktype, mutate(records))
    events, counts, _, _ = both_paths(capture)
    assert counts == {}
    assert len(events) == len(both_paths(SMB2_CAPTURE)[0])


def shuffled(records: Records, rng: random.Random) -> Records:
    """A dozen changes at the TCP level: frames moved, repeated or lost, flags flipped,
    sequence numbers and times shifted, frames cut, a client port changed (a new connection)."""
    out = list(records)
    for _ in range(rng.randint(1, 12)):
        i = rng.randrange(len(out))
        seconds, micros, frame = out[i]
        change = rng.randrange(8)
        if change == 0:
            j = min(len(out) - 1, i + rng.randint(1, 5))
            out[i], out[j] = out[j], out[i]
        elif change == 1:
            out.insert(i + rng.randint(0, 4), out[i])
        elif change == 2:
            del out[i]
        elif change == 3:
            flags = frame[47] ^ (1 << rng.randrange(6))
            out[i] = (seconds, micros, frame[:47] + bytes([flags]) + frame[48:])
        elif change == 4:
            shift = rng.choice([-1, 1, -100, 100, 1 << 31, rng.randrange(1 << 32)])
            seq = (struct.unpack("!I", frame[38:42])[0] + shift) & 0xFFFFFFFF
            out[i] = (seconds, micros, frame[:38] + struct.pack("!I", seq) + frame[42:])
        elif change == 5:
            out[i] = (seconds + rng.choice([900, 1000, -1000, 3600]), micros, frame)
        elif change == 6:
            out[i] = (seconds, micros, frame[: rng.randrange(34, len(frame))])
        else:
            port = struct.pack("!H", rng.choice([445, 40000, 40001]))
            out[i] = (seconds, micros, frame[:34] + port + frame[36:])
    return out


@pytest.mark.parametrize("seed", range(8))
def test_shuffled_segments_read_alike(tmp_path: Path, seed: int) -> None:
    """Reassembly's every rule (out of order, overlap, gaps, snap length cuts, late SYN, reuse,
    resets, idle close) on captures changed at random (a fixed seed) at the TCP level: the
    native path says what the Python one says, events and warnings."""
    rng = random.Random(seed)
    said: dict[str, int] = {}
    for n in range(12):
        linktype, records = read_pcap_records(rng.choice([SMB2_CAPTURE, RPC_OVER_TCP]))
        capture = tmp_path / f"shuffled{n}.pcap"
        write_pcap(capture, linktype, shuffled(records, rng))
        for kind, count in both_paths(capture)[1].items():
            said[kind] = said.get(kind, 0) + count
    assert said.get("tcp_gap", 0) > 0


def test_evicted_connections_read_alike(tmp_path: Path) -> None:
    """More clients than ``MAX_CONNECTIONS`` each send a NEGOTIATE and nothing else, at times
    that go back and forth: the least recently active tenth is closed, in the same order on
    both paths, each time the bound is met."""
    linktype, records = smb2_records()
    negotiate = records[11][2]
    frames = []
    for n in range(MAX_CONNECTIONS + 3000):
        client = struct.pack("!I", 0x0A000000 + n // 60000) + struct.pack("!H", 1024 + n % 60000)
        frame = negotiate[:26] + client[:4] + negotiate[30:34] + client[4:] + negotiate[36:]
        frames.append((1_600_000_000 + (n * 7919) % 600, 0, frame))
    capture = tmp_path / "many.pcap"
    write_pcap(capture, linktype, frames)
    events, counts, _, _ = both_paths(capture)
    assert counts["tcp_connections_evicted"] >= 2
    assert len(events) == len(frames)


def test_unsupported_link_types_are_counted_alike(tmp_path: Path) -> None:
    _, records = smb2_records()
    capture = tmp_path / "other.pcap"
    write_pcap(capture, 147, records)
    events, counts, examples, _ = both_paths(capture)
    assert not events
    assert counts == {"unsupported_link_type": len(records)}
    assert examples["unsupported_link_type"][0] == "link type 147"


def pcap_bytes(tmp_path: Path, records: Records) -> bytes:
    capture = tmp_path / "whole.pcap"
    write_pcap(capture, 1, records)
    return capture.read_bytes()


def test_damaged_pcap_files_end_alike(tmp_path: Path) -> None:
    _, records = smb2_records()
    whole = pcap_bytes(tmp_path, records)
    said = {}
    for name, data in {
        "cut_in_record": whole[:-7],
        "cut_in_header": whole[: 24 + 16 + len(records[0][2]) + 9],
        "file_header": whole[:20],
        "record_length": pcap_bytes(tmp_path, records[:5])
        + struct.pack("<IIII", 0, 0, MAX_RECORD + 1, 0)
        + pcap_bytes(tmp_path, records[5:])[24:],
    }.items():
        capture = tmp_path / f"{name}.pcap"
        capture.write_bytes(data)
        events, counts, examples, damaged = both_paths(capture)
        said[name] = examples.get("input_damaged", [""])[0].split(": ", 1)[-1]
        assert damaged == [str(capture)] and counts["input_damaged"] == 1
    assert said == {
        "cut_in_record": f"truncated packet after frame {len(records) - 1}",
        "cut_in_header": "truncated record header after frame 1",
        "file_header": "truncated pcap file header",
        "record_length": f"corrupt record length {MAX_RECORD + 1} after frame 5",
    }


def test_damaged_pcapng_files_end_alike(tmp_path: Path) -> None:
    _, records = smb2_records()
    head = len(pcapng([], 1))  # the section and interface blocks
    whole = pcapng(records, 1)
    good = pcapng(records[:3], 1)
    epb = bytearray(pcapng(records[3:4], 1)[head:])
    epb[8:12] = struct.pack("<I", 7)  # an interface never described
    bad_interface = good + bytes(epb) + pcapng(records[4:], 1)[head:]
    long_block = bytearray(pcapng(records[3:4], 1)[head:])
    long_block[4:8] = struct.pack("<I", MAX_RECORD + 128 * 1024)
    cases = {
        "cut": (whole[:-10], "input_damaged", "truncated block after frame"),
        "cut_header": (
            good + b"\x06\x00\x00",
            "input_damaged",
            "truncated block header after frame 3",
        ),
        "bad_interface": (bad_interface, "pcapng_bad_packet_block", "after frame 3"),
        "long_block": (good + bytes(long_block), "input_damaged", "corrupt block length"),
        "byte_order": (
            whole[:8] + b"\x01\x02\x03\x04" + whole[12:],
            "input_damaged",
            "bad section",
        ),
    }
    for name, (data, kind, message) in cases.items():
        capture = tmp_path / f"{name}.pcapng"
        capture.write_bytes(data)
        _, counts, examples, _ = both_paths(capture)
        assert counts.get(kind) == 1, (name, counts)
        assert message in examples[kind][0], (name, examples)


@pytest.mark.parametrize(
    ("tsresol", "ticks", "out_of_range"),
    [
        (1, 1 << 44, True),  # tenths of a second: µs fit 64 bits, the date does not
        (0, (1 << 64) - 1, True),  # seconds: not even the µs fit 64 bits
        (0x80 | 120, (1 << 64) - 1, False),  # 2**-120 s: a unit that does not fit 64 bits
    ],
)
def test_pcapng_times_read_alike(
    tmp_path: Path, tsresol: int, ticks: int, out_of_range: bool
) -> None:
    """Timestamps far out (the frame is kept, untimed) and units far off, in the first block."""
    _, records = smb2_records()
    head = len(pcapng([], 1, tsresol=tsresol))
    data = bytearray(pcapng(records, 1, tsresol=tsresol))
    data[head + 12 : head + 20] = struct.pack("<II", ticks >> 32, ticks & 0xFFFFFFFF)
    capture = tmp_path / "times.pcapng"
    capture.write_bytes(bytes(data))
    events, counts, _, _ = both_paths(capture)
    assert counts.get("time_out_of_range", 0) == int(out_of_range)
    assert len(events) == len(both_paths(SMB2_CAPTURE)[0])


def test_the_flow_hash_in_c_is_flows_flow_hash() -> None:
    """The native path drops the other shares' segments by its own CRC-32: it must be
    ``flows.flow_hash`` (zlib's) on every kind of key, IPv4 and IPv6, either direction."""
    rng = random.Random(15)
    for _ in range(5000):
        size = rng.choice((4, 16))
        client = rng.randbytes(size)
        server = client if rng.random() < 0.1 else rng.randbytes(size)
        ports = rng.randrange(65536), rng.choice((445, 139, rng.randrange(65536)))
        for key in (flow_key(client, server, *ports), flow_key(server, client, *ports[::-1])):
            assert native_flow_hash(key) == flow_hash(key), key


def said_by_shares(
    path: Path, count: int, pure: bool, monkeypatch: pytest.MonkeyPatch
) -> list[tuple[list[tuple[int, str]], dict[str, int]]]:
    """Each share's events with their completion keys (``share_events``), and its warnings."""
    if pure:
        monkeypatch.setenv("SMBWATCH_PURE_PYTHON", "1")
    else:
        monkeypatch.delenv("SMBWATCH_PURE_PYTHON", raising=False)
    said = []
    for index in range(count):
        diagnostics = Diagnostics()
        events = [
            (key, json.dumps(event.to_dict()))
            for key, event in share_events(
                as_input(str(path)), diagnostics, None, Options(hashes=()), (index, count)
            )
        ]
        said.append((events, dict(diagnostics.counts)))
    return said


@pytest.mark.parametrize("count", [2, 3])
def test_the_shares_of_a_hostile_capture_say_alike(
    tmp_path: Path, count: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each share says on the native path what it says on the Python one, events with the
    frames that completed them, and warnings: a fragment of SMB is counted by the share of its
    connection alone."""
    linktype, records = smb2_records()
    capture = tmp_path / "fragment.pcap"
    mutated = hostile_snaplen(hostile_fragment(records))
    write_pcap(capture, linktype, mutated)
    pure = said_by_shares(capture, count, True, monkeypatch)
    native = said_by_shares(capture, count, False, monkeypatch)
    assert native == pure
    fragment = mutated[data_frame(records, 1)][2]
    ours = flow_share_of(fragment[26:34] + fragment[34:38], count)
    assert [counts.get("ip_fragment_skipped", 0) for _, counts in native] == [
        int(index == ours) for index in range(count)
    ]
    assert sum(len(events) for events, _ in native) == len(both_paths(capture)[0])


def test_a_share_closes_idle_connections_at_another_shares_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three clients each send a NEGOTIATE (no answer) at 0, 10 and 20 minutes of capture time,
    the first and the last in different shares: the look for idle connections that closes the
    first (idle past IDLE_TIMEOUT) runs at the third one's frame, which its share does not
    decode, so its event is completed by frame 3 in both paths, as in the whole capture."""
    linktype, records = smb2_records()
    negotiate = records[11][2]
    assert 10 * 60 * 1_000_000 < IDLE_TIMEOUT < 20 * 60 * 1_000_000
    server = negotiate[30:34]
    ports = [40000]
    while len(ports) < 3:  # the third client in another share than the first
        port = ports[-1] + 1
        share = flow_share_of(flow_key(bytes([10, 0, 0, 1]), server, port, 445), 2)
        if len(ports) == 1 or share != flow_share_of(
            flow_key(bytes([10, 0, 0, 1]), server, ports[0], 445), 2
        ):
            ports.append(port)
    frames = [
        (
            1_600_000_000 + n * 600,
            0,
            negotiate[:26]
            + bytes([10, 0, 0, 1])
            + negotiate[30:34]
            + struct.pack("!H", port)
            + negotiate[36:],
        )  # fmt: skip
        for n, port in enumerate(ports)
    ]
    capture = tmp_path / "idle.pcap"
    write_pcap(capture, linktype, [(s, u, f) for s, u, f in frames])
    pure = said_by_shares(capture, 2, True, monkeypatch)
    native = said_by_shares(capture, 2, False, monkeypatch)
    assert native == pure
    first = flow_share_of(flow_key(bytes([10, 0, 0, 1]), server, ports[0], 445), 2)
    keys = [key for key, event in native[first][0] if f'"src_port": {ports[0]}' in event]
    assert keys and set(keys) == {3}
