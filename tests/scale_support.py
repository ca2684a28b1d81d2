"""A large capture made of the corpus's real captures, for the tests of reading one capture with
several workers: every Ethernet capture of ``../shared/data`` (SMB1, SMB2/3, DCE/RPC over named
pipes and over TCP, file transfers, a capture that starts mid-session), copied round after round
until the whole is large enough, each copy's hosts given addresses of their own (so that every
copy's connections are new ones) and moved in time so that the copies overlap, the frames then
in time order. Written with the test's own pcap writer (``oracle.write_pcap``)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from conftest import shared_dir
from oracle import read_pcap_records, write_pcap

DATA = shared_dir() / "data"
ETHERNET = 1
ROUND_SECONDS = 2  # each round of copies begins this long after the one before


def corpus_captures() -> list[Path]:
    """The corpus's pcap files (all Ethernet, little-endian, microseconds)."""
    found = sorted(DATA.glob("**/*.cap")) + sorted(DATA.glob("**/*.pcap"))
    assert len(found) >= 20, found
    return found


class _Addresses:
    """A new address for each address of each copy: 10.x.y.z, fd00::n."""

    def __init__(self) -> None:
        self.given = 0

    def copy(self) -> dict[bytes, bytes]:
        return {}

    def new(self, old: bytes) -> bytes:
        self.given += 1
        if len(old) == 4:
            return bytes([10]) + self.given.to_bytes(3, "big")
        return bytes.fromhex("fd00") + bytes(10) + self.given.to_bytes(4, "big")


def _moved(frame: bytes, mapping: dict[bytes, bytes], addresses: _Addresses) -> bytes:
    """The frame with its IP addresses replaced (Ethernet, 802.1Q tags, IPv4 and IPv6)."""
    offset = 12
    while frame[offset : offset + 2] in (b"\x81\x00", b"\x88\xa8"):
        offset += 4
    kind, ip = frame[offset : offset + 2], offset + 2
    if kind == b"\x08\x00":
        spans = [(ip + 12, ip + 16), (ip + 16, ip + 20)]
    elif kind == b"\x86\xdd":
        spans = [(ip + 8, ip + 24), (ip + 24, ip + 40)]
    else:
        return frame
    out = bytearray(frame)
    for start, stop in spans:
        old = frame[start:stop]
        if len(old) != stop - start:
            return frame
        if old not in mapping:
            mapping[old] = addresses.new(old)
        out[start:stop] = mapping[old]
    return bytes(out)


def large_capture(path: Path, at_least: int) -> Path:
    """Write the large capture (at least ``at_least`` bytes) to ``path``."""
    sources = []
    for capture in corpus_captures():
        linktype, records = read_pcap_records(capture)
        assert linktype == ETHERNET, capture
        first = records[0][0] * 1_000_000 + records[0][1]
        sources.append([(s * 1_000_000 + u - first, frame) for s, u, frame in records])
    size_of_round = sum(16 + len(frame) for records in sources for _, frame in records)
    rounds = -(-at_least // size_of_round)
    addresses = _Addresses()
    frames = []
    base = 1_600_000_000 * 1_000_000
    for number in range(rounds):
        for index, records in enumerate(sources):
            mapping = addresses.copy()
            start = base + number * ROUND_SECONDS * 1_000_000 + index * 1000
            for offset, frame in records:
                frames.append((start + offset, _moved(frame, mapping, addresses)))
    frames.sort(key=lambda item: item[0])  # stable: a copy's frames keep their order
    write_pcap(path, ETHERNET, ((t // 1_000_000, t % 1_000_000, f) for t, f in frames))
    return path


def other_frame(client: int, port: int, size: int) -> bytes:
    """An Ethernet/IPv4/TCP frame of ``size`` bytes between two web ports (8080), not SMB."""
    ip_length = size - 14
    ethernet = bytes.fromhex("0200000000010200000000020800")
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_length, 0, 0x4000, 64, 6, 0,
                     client.to_bytes(4, "big"), bytes([192, 0, 2, 80]))  # fmt: skip
    tcp = struct.pack("!HHIIHHHH", port, 8080, 1, 1, 0x5010, 65535, 0, 0)
    return ethernet + ip + tcp + bytes(ip_length - 40)


def with_other_traffic(
    records: list[tuple[int, int, bytes]], blocks: int, frames_per_block: int
) -> Iterator[tuple[int, int, bytes]]:
    """``records`` in ``blocks`` runs, each followed by ``frames_per_block`` full-size frames of
    other TCP traffic at its last frame's time, as a sensor on a busy link records SMB among
    bulk transfers."""
    run = -(-len(records) // blocks)
    for block in range(blocks):
        part = records[block * run : (block + 1) * run]
        yield from part
        seconds, micros = part[-1][:2] if part else records[-1][:2]
        for n in range(frames_per_block):
            yield seconds, micros, other_frame(0xC6336400 + block, 1024 + n % 60000, 1514)
