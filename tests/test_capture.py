"""Capture layer on real bytes: pcap/pcapng readers, link layers, TCP reassembly, NBSS framing.

The oracle is tshark: it must see the same frames (count, times) and the same number of SMB2
headers as smbwatch frames out of the reassembled streams, also after the capture is rewritten
into every supported container, byte order and link type, and after it is damaged on purpose.
"""

from __future__ import annotations

import gzip
import random
import struct
import subprocess
from pathlib import Path

import pytest
from oracle import read_pcap_records, tool, tshark_fields, write_pcap

from smbwatch.capture.pcap import CaptureError, read_packets
from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import capture_events
from smbwatch.smb.nbss import Decoder

pytestmark = pytest.mark.oracle


def all_captures(shared_data: Path) -> list[Path]:
    found = sorted(shared_data.glob("suricata-verify/*/*.pcap")) + sorted(
        shared_data.glob("pcap/*.cap")
    )
    assert len(found) >= 15, "the shared corpus is incomplete"
    return found


class MessageCounter(Decoder):
    """A decoder that counts SMB2 headers (compound parts included) and SMB1 messages."""

    counts: dict[str, int]
    body_wanted = True

    def __init__(self, endpoints: object, diagnostics: Diagnostics) -> None:
        super().__init__()
        self.wants_body = self.body_wanted
        self.counts = COUNTS

    def wanted(self, from_client: bool, head: bytes, total_len: int) -> int:
        return total_len

    def message(self, from_client: bool, data: bytes, total: int, time: int, frame: int) -> list:
        if data[0] != 0xFE:
            self.counts["smb1" if data[0] == 0xFF else "transform"] += 1
            return []
        pos = 0
        while True:
            self.counts["smb2"] += 1
            following = struct.unpack_from("<I", data, pos + 20)[0]
            if not following or pos + following + 64 > len(data):
                return []
            pos += following

    def body(self, from_client: bool, chunk: bytes) -> None:
        self.counts["body"] += len(chunk)

    def body_gap(self, from_client: bool, length: int) -> None:
        self.counts["body_gap"] += length

    def finish(self) -> list:
        return []


class MessageSizes(MessageCounter):
    """Sees only the start of each message; the rest is skipped by the TCP layer."""

    body_wanted = False

    def wanted(self, from_client: bool, head: bytes, total_len: int) -> int:
        return min(total_len, 100)

    def message(self, from_client: bool, data: bytes, total: int, time: int, frame: int) -> list:
        self.counts["messages"] += 1
        self.counts["bytes"] += total
        return []


COUNTS: dict[str, int] = {}


def message_sizes(path: Path, decoder: type = MessageSizes) -> tuple[int, int]:
    """(messages, their total size) framed out of a capture."""
    COUNTS.clear()
    COUNTS.update(messages=0, bytes=0)
    list(capture_events(str(path), Diagnostics(), decoders={0xFE: decoder, 0xFF: decoder}))
    return COUNTS["messages"], COUNTS["bytes"]


class FullMessageSizes(MessageSizes):
    body_wanted = True

    def wanted(self, from_client: bool, head: bytes, total_len: int) -> int:
        return total_len


def count_messages(path: Path) -> tuple[dict[str, int], Diagnostics]:
    COUNTS.clear()
    COUNTS.update(smb2=0, smb1=0, transform=0, body=0, body_gap=0)
    diagnostics = Diagnostics()
    events = list(
        capture_events(
            str(path), diagnostics, decoders={0xFE: MessageCounter, 0xFF: MessageCounter}
        )
    )
    # Only DCE/RPC straight over TCP produces events without an SMB decoder.
    assert all(e.action == "rpc_call" and e.dst_port not in (139, 445) for e in events)
    return dict(COUNTS), diagnostics


def tshark_smb2_headers(path: Path) -> int:
    rows = tshark_fields(path, "", ["smb2.cmd"])
    return sum(len(row[0].split(",")) for row in rows if row[0])


def test_frames_and_times_match_tshark(shared_data: Path) -> None:
    for capture in all_captures(shared_data):
        diagnostics = Diagnostics()
        packets = list(read_packets(str(capture), diagnostics))
        rows = tshark_fields(capture, "", ["frame.time_epoch"])
        assert len(packets) == len(rows), capture
        for (_, micros, _, _), (epoch,) in zip(
            packets[:: max(1, len(packets) // 50)],
            rows[:: max(1, len(packets) // 50)],
            strict=False,
        ):
            whole, _, fraction = epoch.partition(".")
            assert micros == int(whole) * 1_000_000 + int((fraction + "000000")[:6]), capture


def test_truncated_capture_is_reported_not_fatal(shared_data: Path) -> None:
    covenant = next(shared_data.glob("pcap/covenant_*.cap"))
    diagnostics = Diagnostics()
    assert sum(1 for _ in read_packets(str(covenant), diagnostics)) == len(
        tshark_fields(covenant, "", ["frame.number"])
    )
    assert diagnostics.damaged_inputs == [str(covenant)]


def test_smb2_headers_match_tshark(shared_data: Path) -> None:
    for capture in all_captures(shared_data):
        counts, _ = count_messages(capture)
        assert counts["smb2"] == tshark_smb2_headers(capture), capture


def test_skipped_bodies_keep_framing(shared_data: Path, tmp_path: Path) -> None:
    """Bodies the decoder does not want are skipped by the TCP layer: the framing is the same."""
    captures = all_captures(shared_data)
    lossy = tmp_path / "lossy.pcap"
    linktype, records = read_pcap_records(captures[4])
    write_pcap(lossy, linktype, [r for i, r in enumerate(records) if i % 37 != 20])
    for capture in captures:
        assert message_sizes(capture) == message_sizes(capture, FullMessageSizes), capture
    # A loss inside a skipped body keeps the framing in step, where a buffered message is lost.
    skipped, buffered = message_sizes(lossy), message_sizes(lossy, FullMessageSizes)
    assert skipped[0] >= buffered[0] > 0


@pytest.fixture(scope="module")
def smb2_01(shared_data: Path) -> Path:
    return shared_data / "suricata-verify" / "smb2-01" / "smb2-peter.pcap"


def test_containers_byte_orders_and_compression(smb2_01: Path, tmp_path: Path) -> None:
    expected, _ = count_messages(smb2_01)
    linktype, records = read_pcap_records(smb2_01)
    variants = {
        "big.pcap": dict(big_endian=True),
        "nanos.pcap": dict(nanoseconds=True),
        "big-nanos.pcap": dict(big_endian=True, nanoseconds=True),
    }
    for name, options in variants.items():
        write_pcap(tmp_path / name, linktype, records, **options)
    subprocess.run(
        [tool("editcap"), "-F", "pcapng", str(smb2_01), str(tmp_path / "ng.pcapng")], check=True
    )
    (tmp_path / "ng.pcapng.gz").write_bytes(gzip.compress((tmp_path / "ng.pcapng").read_bytes()))
    (tmp_path / "plain.pcap.gz").write_bytes(gzip.compress(smb2_01.read_bytes()))
    first_time = next(read_packets(str(smb2_01), Diagnostics()))[1]
    for variant in sorted(tmp_path.iterdir()):
        counts, diagnostics = count_messages(variant)
        assert counts == expected, variant.name
        assert not diagnostics.counts, variant.name
        assert next(read_packets(str(variant), Diagnostics()))[1] == first_time, variant.name


def _relink(frame: bytes, linktype: int) -> bytes:
    """Rewrite an Ethernet frame into another link layer (the test's own, independent code)."""
    ethertype, packet = frame[12:14], frame[14:]
    if linktype == 101:
        return packet
    if linktype == 113:
        return struct.pack("!HHH8s", 0, 1, 6, frame[6:12]) + ethertype + packet
    if linktype == 276:
        return ethertype + b"\0\0" + struct.pack("!IHBB8s", 1, 1, 0, 6, frame[6:12]) + packet
    if linktype == 0:
        return struct.pack("<I", 2 if ethertype == b"\x08\x00" else 30) + packet
    if linktype == 1:  # QinQ: an 802.1ad tag and an 802.1Q tag
        return frame[:12] + b"\x88\xa8\x00\x0a\x81\x00\x00\x14" + frame[12:]
    raise ValueError(linktype)


def test_link_layers_and_vlan_tags(smb2_01: Path, tmp_path: Path) -> None:
    expected, _ = count_messages(smb2_01)
    linktype, records = read_pcap_records(smb2_01)
    assert linktype == 1
    for target in (101, 113, 276, 0, 1):
        path = tmp_path / f"link{target}.pcap"
        write_pcap(path, target, [(s, u, _relink(f, target)) for s, u, f in records])
        counts, diagnostics = count_messages(path)
        assert counts == expected, target
        assert tshark_smb2_headers(path) == expected["smb2"], target


def test_shuffled_and_duplicated_segments(smb2_01: Path, tmp_path: Path) -> None:
    expected, _ = count_messages(smb2_01)
    linktype, records = read_pcap_records(smb2_01)
    rng = random.Random(445)
    # The handshake stays first: it fixes where each direction starts. Without it, the first
    # segment seen is taken as the start and anything captured before it cannot be placed.
    shuffled: list[tuple[int, int, bytes]] = records[:3]
    for start in range(3, len(records), 6):
        window = records[start : start + 6]
        rng.shuffle(window)
        for record in window:
            shuffled.append(record)
            if rng.random() < 0.2:
                shuffled.append(record)  # a retransmission
    path = tmp_path / "shuffled.pcap"
    write_pcap(path, linktype, shuffled)
    counts, _ = count_messages(path)
    assert counts["smb2"] == expected["smb2"]


def test_missing_segments_resynchronise(smb2_01: Path, tmp_path: Path) -> None:
    linktype, records = read_pcap_records(smb2_01)
    kept = [r for i, r in enumerate(records) if i % 37 != 20]
    path = tmp_path / "lossy.pcap"
    write_pcap(path, linktype, kept)
    counts, diagnostics = count_messages(path)
    oracle = tshark_smb2_headers(path)
    expected, _ = count_messages(smb2_01)
    assert counts["smb2"] >= oracle * 0.9
    assert counts["smb2"] < expected["smb2"]
    assert diagnostics.counts["tcp_gap"] + diagnostics.counts["smb_message_lost"] > 0


def test_truncated_files_never_raise(smb2_01: Path, tmp_path: Path) -> None:
    data = smb2_01.read_bytes()
    rng = random.Random(139)
    for cut in sorted(rng.sample(range(25, len(data)), 40)) + [0, 3, 10, 24]:
        path = tmp_path / "cut.pcap"
        path.write_bytes(data[:cut])
        diagnostics = Diagnostics()
        if cut < 4:
            with pytest.raises(CaptureError):
                list(capture_events(str(path), diagnostics))
            continue
        list(capture_events(str(path), diagnostics, decoders={0xFE: MessageCounter}))


def test_garbage_after_smb_headers(smb2_01: Path, tmp_path: Path) -> None:
    """Random bytes replace the rest of SMB2 messages: framing survives, later messages count."""
    linktype, records = read_pcap_records(smb2_01)
    rng = random.Random(2)
    damaged = []
    for seconds, micros, frame in records:
        if len(frame) > 200 and frame[58:62] == b"\xfeSMB" and rng.random() < 0.3:
            frame = frame[:122] + rng.randbytes(len(frame) - 122)
        damaged.append((seconds, micros, frame))
    path = tmp_path / "garbage.pcap"
    write_pcap(path, linktype, damaged)
    expected, _ = count_messages(smb2_01)
    counts, _ = count_messages(path)
    assert counts["smb2"] >= expected["smb2"] * 0.8


def test_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n" * 10)
    with pytest.raises(CaptureError):
        list(read_packets(str(path), Diagnostics()))
