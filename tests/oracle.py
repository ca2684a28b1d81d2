"""Independent oracles for the tests: tshark (run here and nowhere else), and plain capture
writers that share no code with smbwatch's readers. A missing tool fails the test loudly (the
test setup installs it)."""

from __future__ import annotations

import functools
import shutil
import struct
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path


def tool(name: str) -> str:
    """Path of a required command-line tool; fail (never skip) when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is required by this test: run scripts/install-test-deps.sh")
    return path


def tshark(*args: str) -> str:
    """tshark's standard output for ``args`` (the one place the tests run tshark).

    A capture cut short in the middle of a packet (one of the shared ones is) is read to where
    it ends, as tshark does (exit status 2); any other failure fails the test.
    """
    done = subprocess.run([tool("tshark"), *args], capture_output=True, text=True, timeout=600)
    if done.returncode and "cut short in the middle of a packet" not in done.stderr:
        raise AssertionError(f"tshark {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def tshark_fields(
    capture: Path | str, display_filter: str, fields: Sequence[str], *options: str
) -> list[tuple[str, ...]]:
    """One row per frame that matches ``display_filter`` (every frame when it is empty): the
    values of ``fields``, a field that occurs more than once in the frame joined with ``,``.
    ``options`` go before ``-r`` (e.g. ``"-o", "tcp.check_checksum:TRUE"``)."""
    args = ["-n", *options, "-r", str(capture), "-T", "fields", "-E", "separator=\t"]
    args += ["-E", "occurrence=a", "-E", "aggregator=,"]
    if display_filter:
        args += ["-Y", display_filter]
    for field in fields:
        args += ["-e", field]
    return [tuple(line.split("\t")) for line in tshark(*args).splitlines()]


@functools.cache
def tshark_values(field: str) -> dict[int, str]:
    """Wireshark's value string of one field (``tshark -G values``): the names it gives."""
    values = {}
    for line in _value_strings().splitlines():
        parts = line.split("\t")
        if len(parts) >= 4 and parts[0] == "V" and parts[1] == field:
            values[int(parts[2], 0)] = parts[3]
    assert values, field
    return values


@functools.cache
def _value_strings() -> str:
    return tshark("-G", "values")


def tshark_tcp_stream(capture: Path | str, stream: int) -> dict[bool, bytes]:
    """The bytes of one TCP connection as tshark reassembles them: {from the client: bytes}
    (the client is the side that sent first, as ``follow,tcp`` shows it)."""
    sides = {True: bytearray(), False: bytearray()}
    follow = tshark("-n", "-q", "-r", str(capture), "-z", f"follow,tcp,raw,{stream}")
    for line in follow.splitlines():
        text = line.strip()
        if text and all(c in "0123456789abcdef" for c in text):
            sides[not line.startswith("\t")] += bytes.fromhex(text)
    return {side: bytes(data) for side, data in sides.items()}


def read_pcap_records(path: Path) -> tuple[int, list[tuple[int, int, bytes]]]:
    """(link type, [(seconds, microseconds, frame)]) of a little-endian µs pcap, for rewriting."""
    data = path.read_bytes()
    assert data[:4] == b"\xd4\xc3\xb2\xa1", "test inputs are little-endian microsecond pcaps"
    linktype = struct.unpack_from("<I", data, 20)[0]
    records, pos = [], 24
    while pos + 16 <= len(data):
        seconds, micros, caplen, _ = struct.unpack_from("<IIII", data, pos)
        if pos + 16 + caplen > len(data):
            break
        records.append((seconds, micros, data[pos + 16 : pos + 16 + caplen]))
        pos += 16 + caplen
    return linktype, records


def cut_capture(source: Path, target: Path, after_frame: int) -> None:
    """A copy of a capture that begins with the frame after ``after_frame``, as if the recording
    had started there (frame numbers in the copy are ``after_frame`` lower)."""
    linktype, records = read_pcap_records(source)
    write_pcap(target, linktype, records[after_frame:])


def write_pcap(
    path: Path,
    linktype: int,
    records: Iterable[tuple[int, int, bytes]],
    *,
    big_endian: bool = False,
    nanoseconds: bool = False,
) -> None:
    """A classic pcap file in either byte order and time resolution."""
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    parts = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype)]
    for seconds, micros, frame in records:
        fraction = micros * 1000 if nanoseconds else micros
        parts.append(struct.pack(order + "IIII", seconds, fraction, len(frame), len(frame)))
        parts.append(frame)
    path.write_bytes(b"".join(parts))


def pcapng(
    records: Iterable[tuple[int, int, bytes]], linktype: int, *, big: bool = False, tsresol: int = 6
) -> bytes:
    """The records as a pcapng section: one interface (``if_tsresol``), Enhanced Packet Blocks."""
    order = ">" if big else "<"

    def block(kind: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        return (
            struct.pack(order + "II", kind, len(body) + 12)
            + body
            + struct.pack(order + "I", len(body) + 12)
        )

    option = struct.pack(order + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
    out = [block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    out.append(block(1, struct.pack(order + "HHI", linktype, 0, 0) + option + b"\0\0\0\0"))
    units = 2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol
    for seconds, micros, frame in records:
        ticks = (seconds * 1_000_000 + micros) * units // 1_000_000 % (1 << 64)
        body = struct.pack(
            order + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)
        )
        out.append(block(6, body + frame))
    return b"".join(out)


def rename_in_capture(source: Path, target: Path, old: str, new: str) -> None:
    """Replace a UTF-16LE file name in every frame (same length), as hostile traffic would."""
    old_bytes, new_bytes = old.encode("utf-16-le"), new.encode("utf-16-le")
    assert len(old_bytes) == len(new_bytes)
    linktype, records = read_pcap_records(source)
    replaced = [(s, u, f.replace(old_bytes, new_bytes)) for s, u, f in records]
    assert replaced != records
    write_pcap(target, linktype, replaced)
