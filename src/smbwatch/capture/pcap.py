"""Capture file records: pcap (both byte orders, µs and ns) and pcapng, plain or gzip-compressed,
on disk or in a zip archive (``containers``).

Files are read in large chunks and records are cut out of the chunk with ``unpack_from``, so the
cost per packet is one header unpack and one slice. Nothing of the file is held beyond the chunk
being parsed: memory does not grow with the capture.
"""

from __future__ import annotations

import contextlib
import mmap
import struct
from collections.abc import Callable, Generator, Iterator
from typing import BinaryIO, Final

from mypy_extensions import mypyc_attr

from smbwatch.containers import InputFile, as_input, damage
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import MAX_TIME

CHUNK: Final = 1 << 22
MAX_RECORD: Final = (
    1 << 18
)  # no real link layer frame is larger; a bigger length means a corrupt file
MAX_BLOCK: Final = MAX_RECORD + 64 * 1024  # a pcapng block: such a frame and room for options

# A record is found from the middle of a pcap file (``FrameReader.sample``) where this many
# plausible record headers follow each other, searched for this far from where the look starts.
RESYNC_CHAIN: Final = 8
RESYNC_SEARCH: Final = 1 << 16

PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", 1),
    b"\xa1\xb2\xc3\xd4": (">", 1),
    b"\x4d\x3c\xb2\xa1": ("<", 1000),  # nanosecond resolution: divide by 1000 for µs
    b"\xa1\xb2\x3c\x4d": (">", 1000),
}
PCAPNG_MAGIC: Final = b"\x0a\x0d\x0d\x0a"
# By byte order: block type and length; Enhanced Packet Block; Packet Block; one word.
_PCAPNG_STRUCTS: Final = {
    order: tuple(struct.Struct(order + fields) for fields in ("II", "IIII", "HHIII", "I"))
    for order in "<>"
}

# One packet: (frame number from 1, time in µs since the epoch, link type, frame bytes).
Packet = tuple[int, int, int, bytes]
# The same, its bytes left where they were read: ``buffer[start:stop]``, valid until the next one.
Buffer = bytes | mmap.mmap
Frame = tuple[int, int, int, Buffer, int, int]


class CaptureError(Exception):
    """The file is not a capture this reader knows (a user error, reported in one line)."""


def capture_format(head: bytes) -> str | None:
    """``pcap`` or ``pcapng`` from the first bytes of a (decompressed) file, else None."""
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    return None


def read_packets(path: str | InputFile, diagnostics: Diagnostics) -> Iterator[Packet]:
    """Every packet of a pcap or pcapng file (gzip or not), in file order.

    Raises CaptureError now when the file is not a capture at all; a truncated or corrupt file
    ends the iteration early with ``diagnostics.damaged`` instead.
    """
    return _packets(read_frames(path, diagnostics))


def _packets(reader: FrameReader) -> Iterator[Packet]:
    try:
        while reader.next():
            frame = reader.buf[reader.start : reader.stop]
            yield reader.number, reader.time, reader.linktype, frame
    finally:
        reader.close()


@mypyc_attr(allow_interpreted_subclasses=True)
class FrameReader:
    """The frames of a capture one at a time, without a copy of each: ``next()`` reads the next
    frame and says whether there was one; its number, time, link type and bytes
    (``buf[start:stop]``, valid until the next call) are then attributes. Pulled rather than
    yielded because it is the loop every frame goes through: compiled, a call and a few fields
    cost less than a generator's tuple per frame."""

    def __init__(self) -> None:
        self.number = 0  # frame number, from 1
        self.time = 0  # µs since the epoch
        self.linktype = 0
        self.buf: Buffer = b""
        self.start = 0
        self.stop = 0
        self.mapped: mmap.mmap | None = None  # the memory-mapped file, when ``buf`` is it
        self.fileno = -1  # ... and the descriptor it is open as
        # What the native path (``capture.native``) walks the mapped file from: the format,
        # where the first record starts, and where damage is said.
        self.kind = ""
        self.pos = 0
        self.path = ""
        self.diagnostics = Diagnostics()
        self.releases: list[Callable[[], None]] = []  # before_close

    def next(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        """Stop early (the end of the capture closes it too)."""

    def sample(self, places: int, count: int) -> Iterator[tuple[int, int, int]]:
        """(link type, start, stop) of up to ``count`` frames (``mapped[start:stop]``) at each
        of ``places`` places spread over the file, found without reading what lies between: a
        look across a large capture (``streams.smb_share``). The pages read are handed back
        place by place (a fault maps in as much as a megabyte of the file). Nothing for a file
        not mapped."""
        return iter(())

    def before_close(self, release: Callable[[], None]) -> None:
        """Have ``release`` called before the mapped file is closed: whatever still holds the
        mapping (the native path's page thread) lets go of it first, in any order of closing."""
        self.releases.append(release)

    def _read_from(self, chunks: _Chunks) -> None:
        """The frames are read from ``chunks``: where that is the memory-mapped file, say so."""
        chunks.releases = self.releases
        if chunks.mapped is not None:
            self.mapped, self.fileno = chunks.mapped, chunks.stream.fileno()


class _FramesOf(FrameReader):
    """A generator of frames as a FrameReader (pcapng, where blocks come in many kinds)."""

    def __init__(
        self, frames: Generator[Frame], chunks: _Chunks, kind: str, diagnostics: Diagnostics
    ) -> None:
        super().__init__()
        self.frames = frames
        self.chunks = chunks
        self.kind, self.path, self.diagnostics = kind, chunks.path, diagnostics
        self._read_from(chunks)

    def next(self) -> bool:
        frame = next(self.frames, None)
        if frame is None:
            return False
        self.number, self.time, self.linktype, self.buf, self.start, self.stop = frame
        return True

    def close(self) -> None:
        self.frames.close()
        self.chunks.close()  # a generator closed before it started has not closed it

    def sample(self, places: int, count: int) -> Iterator[tuple[int, int, int]]:
        buf = self.mapped
        if buf is None or self.kind != "pcapng" or len(buf) < 12:
            return
        size = len(buf)
        order = ">" if buf[8:12] == b"\x1a\x2b\x3c\x4d" else "<"
        header, packet_block, old_packet_block, _ = _PCAPNG_STRUCTS[order]
        interfaces = _first_interfaces(buf, order)
        for index in range(places):
            place = 24 + (size - 24) * index // places
            place += -place % 4  # blocks are whole words from the start of the file
            pos = _block_near(buf, place, header)
            for _ in range(count):
                end = _block_end(buf, pos, header)
                if end < 0:
                    break
                block_type: int
                iface_id: int
                caplen: int
                block_type = header.unpack_from(buf, pos)[0]
                first, body = pos + 8, end - pos - 12
                pos = end
                if block_type == 6 and body >= 20:
                    iface_id, _, _, caplen = packet_block.unpack_from(buf, first)
                elif block_type == 2 and body >= 20:
                    iface_id, _, _, _, caplen = old_packet_block.unpack_from(buf, first)
                else:
                    continue
                if iface_id < len(interfaces) and caplen <= body - 20:
                    yield interfaces[iface_id].linktype, first + 20, first + 20 + caplen
            _hand_back(buf, place, pos)


def read_frames(source: str | InputFile, diagnostics: Diagnostics) -> FrameReader:
    """``read_packets`` without a copy of each frame: the decoder reads the headers where they
    lie (in the memory-mapped file) and copies only the payload it keeps."""
    source = as_input(source)
    path = source.name
    try:
        plain = source.plain_file()
        stream: BinaryIO = open(source.path, "rb") if plain else source.open()  # noqa: SIM115
    except OSError as exc:
        raise CaptureError(f"{path}: cannot read: {exc}") from None
    try:
        head = stream.read(4)
    except OSError as exc:
        stream.close()
        raise CaptureError(f"{path}: cannot read: {exc}") from None
    kind = capture_format(head)
    if kind is None:
        stream.close()
        raise CaptureError(f"{path}: not a pcap or pcapng capture")
    chunks = _Chunks(stream, head, path, diagnostics, plain)
    if kind == "pcap":
        return _PcapReader(chunks, head, path, diagnostics)
    return _FramesOf(_pcapng_records(chunks, head, path, diagnostics), chunks, kind, diagnostics)


class _Chunks:
    """A sliding window over the file: ``need(n)`` makes n bytes available in ``buf`` from
    ``pos`` (up to ``end``). A plain file is memory-mapped and the pages already read are handed
    back to the kernel as the window moves, so neither copies nor memory grow with the file;
    a compressed one is read in chunks."""

    __slots__ = ("stream", "buf", "pos", "end", "mapped", "path", "diagnostics", "damage_said",
                 "releases")  # fmt: skip

    def __init__(
        self, stream: BinaryIO, head: bytes, path: str, diagnostics: Diagnostics, plain: bool
    ) -> None:
        self.stream, self.path, self.diagnostics = stream, path, diagnostics
        self.damage_said = False
        self.releases: list[Callable[[], None]] = []  # called before the mapping is closed
        self.mapped: mmap.mmap | None = None
        if plain:
            with contextlib.suppress(OSError, ValueError):  # empty, or not a regular file
                self.mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
        self.buf: bytes | mmap.mmap = self.mapped if self.mapped is not None else head
        self.pos = 0
        self.end = min(len(self.buf), CHUNK)

    def need(self, n: int) -> bool:
        if self.end - self.pos >= n:
            return True
        if self.mapped is not None:
            released = self.pos - self.pos % mmap.PAGESIZE
            if released:
                self.mapped.madvise(mmap.MADV_DONTNEED, 0, released)
            self.end = min(len(self.mapped), self.pos + max(CHUNK, n))
            return self.end - self.pos >= n
        rest = self.buf[self.pos : self.end]
        wanted = max(CHUNK, n - len(rest))
        try:
            more = self.stream.read(wanted)
        except OSError as exc:
            self.diagnostics.damaged(self.path, f"read error: {exc}")
            more = b""
        if len(more) < wanted and (problem := damage(self.stream)) and not self.damage_said:
            self.damage_said = True  # the container's damage, before what it cut short says
            self.diagnostics.damaged(self.path, problem)
        self.buf = rest + more
        self.pos, self.end = 0, len(self.buf)
        return self.end >= n

    def close(self) -> None:
        for release in self.releases:
            release()
        if self.mapped is not None:
            self.mapped.close()
        self.stream.close()


class _PcapReader(FrameReader):
    """The records of a pcap file."""

    def __init__(self, chunks: _Chunks, magic: bytes, path: str, diagnostics: Diagnostics):
        super().__init__()
        self.chunks, self.path, self.diagnostics = chunks, path, diagnostics
        order, self.divisor = PCAP_MAGICS[magic]
        self.big_endian = order == ">"
        self.kind = "pcap"
        self.unpack = struct.Struct(order + "IIII").unpack_from
        self.pos = 24
        self.end = chunks.end
        self.done = not chunks.need(24)
        if self.done:
            diagnostics.damaged(path, "truncated pcap file header")
            chunks.close()
            return
        self.buf = chunks.buf
        self.linktype = struct.unpack_from(order + "I", chunks.buf, 20)[0] & 0x0FFFFFFF
        self._read_from(chunks)

    def next(self) -> bool:
        if self.done:
            return False
        chunks, pos, end = self.chunks, self.pos, self.end
        if end - pos < 16:
            chunks.pos = pos
            if not chunks.need(16):
                if chunks.end != chunks.pos:
                    self._damaged("truncated record header")
                return self._finish()
            self.buf, pos, end = chunks.buf, chunks.pos, chunks.end
        seconds: int  # typed, so that the compiled build does this arithmetic natively
        fraction: int
        caplen: int
        seconds, fraction, caplen, _ = self.unpack(self.buf, pos)
        stop = pos + 16 + caplen
        if caplen > MAX_RECORD:
            self._damaged(f"corrupt record length {caplen}")
            return self._finish()
        if stop > end:
            chunks.pos = pos
            if not chunks.need(16 + caplen):
                self._damaged("truncated packet")
                return self._finish()
            self.buf, pos, end = chunks.buf, chunks.pos, chunks.end
            stop = pos + 16 + caplen
        self.number += 1
        self.time = seconds * 1_000_000 + fraction // self.divisor
        self.start, self.stop = pos + 16, stop
        self.pos, self.end = stop, end
        return True

    def close(self) -> None:
        if not self.done:
            self._finish()

    def sample(self, places: int, count: int) -> Iterator[tuple[int, int, int]]:
        buf = self.mapped
        if buf is None:
            return
        size = len(buf)
        for index in range(places):
            place = 24 + (size - 24) * index // places
            pos = self._record_near(buf, place, size)
            seconds = -1
            for _ in range(count):
                stop, seconds = self._record_end(buf, pos, size, seconds)
                if stop < 0:
                    break
                yield self.linktype, pos + 16, stop
                pos = stop
            _hand_back(buf, place, pos)

    def _record_near(self, buf: mmap.mmap, place: int, size: int) -> int:
        """The first place at or after ``place`` (within ``RESYNC_SEARCH`` bytes) where
        ``RESYNC_CHAIN`` plausible records follow each other; -1 if there is none."""
        for candidate in range(place, min(place + RESYNC_SEARCH, size - 16)):
            pos, seconds = candidate, -1
            for _ in range(RESYNC_CHAIN):
                pos, seconds = self._record_end(buf, pos, size, seconds)
                if pos < 0:
                    break
            else:
                return candidate
        return -1

    def _record_end(self, buf: mmap.mmap, pos: int, size: int, after: int) -> tuple[int, int]:
        """(where the record at ``pos`` ends, its seconds) if its header is plausible: a length
        within the file, no larger than the frame's own or than any link's frame, a fraction of
        a second under a second, and (``after`` not -1) a time no more than a minute before
        ``after`` or a day after it; else (-1, -1)."""
        if pos < 0 or size - pos < 16:
            return -1, -1
        seconds: int
        fraction: int
        caplen: int
        length: int
        seconds, fraction, caplen, length = self.unpack(buf, pos)
        stop = pos + 16 + caplen
        if not 0 < caplen <= length <= MAX_RECORD or stop > size:
            return -1, -1
        if fraction >= 1_000_000 * self.divisor:
            return -1, -1
        if after >= 0 and not after - 60 <= seconds <= after + 86_400:
            return -1, -1
        return stop, seconds

    def _damaged(self, what: str) -> None:
        self.diagnostics.damaged(self.path, f"{what} after frame {self.number}")

    def _finish(self) -> bool:
        self.done = True
        self.buf = b""
        self.chunks.close()
        return False


def _plausible_block_length(length: int) -> bool:
    """Whether a pcapng block length can be one: whole words, a header and a trailer at least,
    ``MAX_BLOCK`` at most (the native walk's twin checks the same in C)."""
    return 12 <= length <= MAX_BLOCK and not length % 4


def _hand_back(buf: mmap.mmap, place: int, pos: int) -> None:
    """The pages a look from ``place`` read (to ``pos``, or searching) back to the kernel."""
    first = place - place % mmap.PAGESIZE
    buf.madvise(mmap.MADV_DONTNEED, first, min(len(buf), max(pos, place) + RESYNC_SEARCH) - first)


def _first_interfaces(buf: mmap.mmap, order: str) -> list[_Interface]:
    """The interfaces a pcapng file's first section describes before its first packet."""
    header = _PCAPNG_STRUCTS[order][0]
    interfaces: list[_Interface] = []
    pos = 0
    for _ in range(RESYNC_SEARCH // 16):
        end = _block_end(buf, pos, header)
        if end < 0:
            break
        block_type: int = header.unpack_from(buf, pos)[0]
        if block_type == 1 and end - pos >= 20:
            interfaces.append(_interface(buf[pos + 8 : end - 4], order))
        elif block_type in (2, 3, 6):
            break
        pos = end
    return interfaces


def _block_near(buf: mmap.mmap, place: int, header: struct.Struct) -> int:
    """The first word at or after ``place`` (within ``RESYNC_SEARCH`` bytes) where
    ``RESYNC_CHAIN`` plausible pcapng blocks follow each other; -1 if there is none."""
    for candidate in range(place, min(place + RESYNC_SEARCH, len(buf) - 12), 4):
        pos = candidate
        for _ in range(RESYNC_CHAIN):
            pos = _block_end(buf, pos, header)
            if pos < 0:
                break
        else:
            return candidate
    return -1


def _block_end(buf: mmap.mmap, pos: int, header: struct.Struct) -> int:
    """Where the pcapng block at ``pos`` ends if it is plausible: a length of whole words, as
    the reader allows, within the file and repeated at the block's end; else -1."""
    if pos < 0 or len(buf) - pos < 12:
        return -1
    length: int = header.unpack_from(buf, pos)[1]
    end = pos + length
    if not _plausible_block_length(length) or end > len(buf):
        return -1
    trailer: int = header.unpack_from(buf, end - 8)[1]  # the last word: the length again
    return end if trailer == length else -1


class _Interface:
    __slots__ = ("linktype", "snaplen", "units_per_second")

    def __init__(self, linktype: int, snaplen: int, units_per_second: int) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.units_per_second = units_per_second


def _tsresol(value: int) -> int:
    """Units per second from if_tsresol (a power of 10, or of 2 when the top bit is set)."""
    return 2 ** (value & 0x7F) if value & 0x80 else 10 ** min(value, 18)


def _interface(body: bytes, order: str) -> _Interface:
    linktype, _, snaplen = struct.unpack_from(order + "HHI", body, 0)
    units = 1_000_000
    pos = 8
    while pos + 4 <= len(body):
        code, length = struct.unpack_from(order + "HH", body, pos)
        if code == 0:
            break
        if code == 9 and length >= 1 and pos + 5 <= len(body):
            units = _tsresol(body[pos + 4])
        pos += 4 + ((length + 3) & ~3)
    return _Interface(linktype, snaplen or MAX_RECORD, units)


def _pcapng_records(
    chunks: _Chunks, magic: bytes, path: str, diagnostics: Diagnostics
) -> Generator[Frame]:
    try:
        order = "<"
        block_header, packet_block, old_packet_block, word = _PCAPNG_STRUCTS[order]
        interfaces: list[_Interface] = []
        frame = 0
        while True:
            if not chunks.need(12):
                if chunks.end != chunks.pos:
                    diagnostics.damaged(path, f"truncated block header after frame {frame}")
                return
            buf, pos = chunks.buf, chunks.pos
            if buf[pos : pos + 4] == PCAPNG_MAGIC:
                bom = buf[pos + 8 : pos + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    order = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    order = ">"
                else:
                    diagnostics.damaged(path, "bad section byte-order magic")
                    return
                block_header, packet_block, old_packet_block, word = _PCAPNG_STRUCTS[order]
                interfaces = []
            block_type: int
            block_len: int
            block_type, block_len = block_header.unpack_from(buf, pos)
            if not _plausible_block_length(block_len):
                diagnostics.damaged(path, f"corrupt block length {block_len} after frame {frame}")
                return
            if not chunks.need(block_len):
                diagnostics.damaged(path, f"truncated block after frame {frame}")
                return
            buf, pos = chunks.buf, chunks.pos
            chunks.pos = pos + block_len
            first, last = pos + 8, pos + block_len - 4  # the block's body, read where it lies
            size = last - first
            if block_type == 1 and size >= 8:  # Interface Description Block
                interfaces.append(_interface(buf[first:last], order))
                continue
            if block_type == 3 and size >= 4 and interfaces:  # Simple Packet Block: no time
                iface = interfaces[0]
                original: int = word.unpack_from(buf, first)[0]
                frame += 1
                data = first + 4
                yield (
                    frame,
                    0,
                    iface.linktype,
                    buf,
                    data,
                    min(data + original, data + iface.snaplen, last),
                )
                continue
            iface_id: int
            high: int
            low: int
            caplen: int
            if block_type == 6 and size >= 20:  # Enhanced Packet Block
                iface_id, high, low, caplen = packet_block.unpack_from(buf, first)
            elif block_type == 2 and size >= 20:  # obsolete Packet Block
                iface_id, _, high, low, caplen = old_packet_block.unpack_from(buf, first)
            else:
                continue
            if iface_id >= len(interfaces) or caplen > size - 20:
                diagnostics.warn("pcapng_bad_packet_block", f"{path}: after frame {frame}")
                continue
            iface = interfaces[iface_id]
            frame += 1
            micros = ((high << 32) | low) * 1_000_000 // iface.units_per_second
            if micros > MAX_TIME:  # a hostile if_tsresol or timestamp: kept, written untimed
                diagnostics.warn("time_out_of_range", f"{path}: frame {frame}: no date")
            yield frame, micros, iface.linktype, buf, first + 20, first + 20 + caplen

    finally:
        chunks.close()
