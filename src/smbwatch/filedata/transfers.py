"""What crossed the wire of each opened file: which bytes, what they are, and their hashes.

``FileTracker`` (one per connection's decoder) follows the data written to (upload) and read
from (download) each open file: the distinct ranges seen, the type, and, while the data arrives
in order from offset 0, sha256/sha1/md5 computed as it streams (by a process beside the decoder:
``filedata.digests``), and the file's bytes handed to the extraction sink. A close event whose
digests are still being computed waits in ``Transfers`` until ``settle`` finds them in.

Nothing holds a whole file: in-order data is hashed as it arrives, data that arrives ahead of a
missing part is held up to a bound per file and per capture, and beyond that bound, or after a
hole, the hash is given up while ``bytes_seen`` stays exact. ``Transfers`` is what the trackers
of one capture share.
"""

from __future__ import annotations

import mmap
from collections import deque
from collections.abc import Iterator
from typing import Final

from smbwatch.capture.tcp import BodyTap
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.filedata.digests import DigestError, DigestService, start_digests
from smbwatch.filedata.magic import sniff_magic
from smbwatch.filedata.ranges import Ranges
from smbwatch.options import Bytes, ExtractedFile, Options

UPLOAD, DOWNLOAD = "upload", "download"
MAX_HELD_EVENTS: Final = 16384  # events held back behind one whose file is still being hashed
MAX_HELD_PIECES: Final = 1024  # separate out-of-order pieces held per file and direction


class Transfers:
    """What the file transfers of one capture share: the options and the bound on data held
    out of order. ``close`` at the end of the capture."""

    def __init__(
        self, options: Options, diagnostics: Diagnostics, digests: DigestService | None = None
    ) -> None:
        self.options = options
        self.diagnostics = diagnostics
        self.hashing = options.hashing
        self.held = 0  # out-of-order bytes held by every file
        self.extracting: set[_Stream] = set()  # streams whose file is being extracted
        # Where the digests are computed: by default a process started with the first file
        self._digests = digests
        self._capture: mmap.mmap | None = None  # the capture file, if memory-mapped
        self._fileno = -1  # ... and open as this descriptor
        self._streams = 0  # streams numbered so far
        self._awaiting: dict[int, _Awaiting] = {}  # by id() of the event the digests go on

    def tracker(self) -> FileTracker:
        """The tracker of one connection."""
        return FileTracker(self)

    def read_from(self, capture: mmap.mmap | None, fileno: int) -> None:
        """The capture's frames lie in ``capture`` (memory-mapped, open as ``fileno``): file
        data found there is hashed where it lies, not copied."""
        self._capture, self._fileno = capture, fileno

    def digests(self) -> DigestService:
        if self._digests is None:
            self._digests = start_digests(self._capture, self._fileno, self.options.hashes)
        return self._digests

    def new_stream(self) -> int:
        self._streams += 1
        return self._streams

    def await_digests(self, stream: _Stream, event: SmbEvent, first: Seen, last: Seen) -> None:
        """``stream`` is complete: its digests go on ``event`` once they are in."""
        self.digests().finish(stream.number)
        self._awaiting[id(event)] = _Awaiting(stream, event, first, last)

    def awaited(self) -> bool:
        """Whether some event awaits digests."""
        return bool(self._awaiting)

    def settle(self, event: SmbEvent, wait: bool = True) -> bool:
        """Whether ``event`` is complete: it awaits no digests, or they are in now (and on it).
        With ``wait`` False, digests not yet computed are not waited for."""
        awaiting = self._awaiting.get(id(event))
        if awaiting is None:
            return True
        digests = self.digests()
        number = awaiting.stream.number
        if not wait and not digests.ready(number):
            return False
        del self._awaiting[id(event)]
        try:
            found = digests.take(number)
            if found is None:
                reason = "too many files hashed at once: the oldest was forgotten"
                self.diagnostics.warn("file_hash_abandoned", reason)
        except DigestError as error:
            self.diagnostics.warn("file_hash_failed", str(error))
            found = None
        if found is None:
            awaiting.stream.abandon(remote=False)
        else:
            event.sha256, event.sha1, event.md5 = found
            awaiting.stream.commit(event, awaiting.first, awaiting.last)
        return True

    def close(self) -> None:
        """End of the capture: every digest still due is waited for (on its event); files
        still being extracted are incomplete."""
        for awaiting in list(self._awaiting.values()):
            self.settle(awaiting.event)
        for stream in list(self.extracting):
            stream.abandon()
        if self._digests is not None:
            self._digests.close()
            self._digests = None


def settled(batches: Iterator[list[SmbEvent]], transfers: Transfers) -> Iterator[SmbEvent]:
    """The events of a capture in order, each once its file's digests are in: an event still
    waiting for them holds back the ones after it, up to ``MAX_HELD_EVENTS``, while hashing
    goes on."""
    held: deque[SmbEvent] = deque()
    for batch in batches:
        if not held and not transfers.awaited():  # none waits (always, without hashing)
            yield from batch
            continue
        held.extend(batch)
        while held and transfers.settle(held[0], len(held) > MAX_HELD_EVENTS):
            yield held.popleft()
    while held:
        transfers.settle(held[0])
        yield held.popleft()


def tracker_of(files: Transfers | None, diagnostics: Diagnostics) -> FileTracker:
    """The tracker of a decoder's connection: from the capture's ``files``, or, for a decoder
    used on its own, from transfers of its own with the default options."""
    return (files or Transfers(Options(), diagnostics)).tracker()


class _Stream:
    """The in-order bytes of one file from offset 0: hashed, and extracted when asked."""

    __slots__ = ("transfers", "digests", "number", "writer", "failed")

    def __init__(self, transfers: Transfers) -> None:
        self.transfers = transfers
        self.digests = transfers.digests()
        self.number = transfers.new_stream()
        self.writer: ExtractedFile | None = None
        self.failed: OSError | None = None  # the extraction could not be written
        sink = transfers.options.extract
        if sink is not None:
            self.writer = sink.begin()
            if self.writer is None:
                transfers.diagnostics.warn("file_extract_skipped", "too many files in progress")
            else:
                transfers.extracting.add(self)

    def add(self, buf: Bytes, start: int, stop: int) -> None:
        """The next bytes of the file: ``buf[start:stop]``."""
        self.digests.data(self.number, buf, start, stop)
        if self.writer is not None and self.failed is None:
            try:
                self.writer.write(buf[start:stop])
            except OSError as error:
                self.failed = error

    def commit(self, event: SmbEvent, first: tuple[int, int], last: tuple[int, int]) -> None:
        """The file is complete and ``event`` describes it: keep the extracted copy."""
        writer = self.writer
        if writer is None:
            return
        self.writer = None
        self.transfers.extracting.discard(self)
        error = self.failed
        if error is None:
            try:
                writer.commit(event, first, last)
                return
            except OSError as raised:
                error = raised
        self.transfers.diagnostics.warn("file_extract_failed", f"{event.path}: {error}")
        writer.discard()

    def abandon(self, remote: bool = True) -> None:
        """The file cannot be complete: drop its hashing (``remote``) and any extracted part."""
        if remote:
            self.digests.abandon(self.number)
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
            self.transfers.extracting.discard(self)


Seen = tuple[int, int]  # (time, frame) of a message with file data


class _Awaiting:
    """A complete stream whose digests are being computed, and the event they go on."""

    __slots__ = ("stream", "event", "first", "last")

    def __init__(self, stream: _Stream, event: SmbEvent, first: Seen, last: Seen) -> None:
        self.stream = stream
        self.event = event
        self.first = first
        self.last = last


class _Transfer:
    """The data of one direction of one open file."""

    __slots__ = (
        "transfers", "upload", "ranges", "magic", "first", "last", "position", "stream", "held",
        "held_bytes", "held_start", "held_end",
    )  # fmt: skip

    def __init__(self, transfers: Transfers, upload: bool, time: int, frame: int) -> None:
        self.transfers = transfers
        self.upload = upload
        self.ranges = Ranges(transfers.diagnostics)
        self.magic: str | None = None
        self.first = self.last = (time, frame)  # of the first and last message with data
        self.position = 0 if transfers.hashing else -1  # next byte to hash; -1: no hash
        self.stream: _Stream | None = None
        self.held: dict[int, bytearray] = {}  # data ahead of ``position``, by offset
        self.held_bytes = 0
        self.held_start = self.held_end = -1  # the piece held last: data may continue it

    # -- the in-order stream -------------------------------------------------------------------

    def add(self, offset: int, buf: Bytes, start: int, stop: int) -> None:
        """Data ``buf[start:stop]`` at ``offset``: counted, and hashed in order (held for later
        if it is early)."""
        end = offset + stop - start
        self.ranges.seen(offset, end)
        if offset == self.position:
            self.position = end
            if self.stream is None:
                self.stream = _Stream(self.transfers)
            self.stream.add(buf, start, stop)
            if self.held:
                self._drain()
        elif self.position >= 0:
            if offset > self.position:
                self._hold(offset, buf[start:stop])
            else:
                self._behind(offset, buf[start:stop])
                self._drain()

    def _behind(self, offset: int, data: Bytes) -> None:
        """Data that starts before ``position``: a download reads bytes again (the same file,
        only the new tail counts); an upload rewrites them, so the hash would not be the file's."""
        if self.upload:
            self.give_up(None)
            return
        known = self.position - offset
        if known < len(data):
            assert self.stream is not None
            self.stream.add(data, known, len(data))
            self.position += len(data) - known

    def _drain(self) -> None:
        """Hash the held pieces that the stream has now reached."""
        held = self.held
        while held and self.position >= 0:
            offset = self.position if self.position in held else min(held)
            if offset > self.position:
                return
            data = held.pop(offset)
            self.held_bytes -= len(data)
            self.transfers.held -= len(data)
            if offset == self.position:
                assert self.stream is not None
                self.stream.add(data, 0, len(data))
                self.position += len(data)
            else:
                self._behind(offset, data)

    def _hold(self, offset: int, data: Bytes) -> None:
        """Keep data that arrived before the bytes preceding it, within the bounds."""
        options = self.transfers.options
        size = len(data)
        continues = offset == self.held_end and self.held_start in self.held
        if (
            self.held_bytes + size > options.max_held_per_file
            or self.transfers.held + size > options.max_held_total
            or (not continues and len(self.held) >= MAX_HELD_PIECES)
        ):
            self.give_up("more data out of order than the bound allows")
            return
        if continues:
            self.held[self.held_start] += data
        else:
            previous = self.held.get(offset)
            if previous is not None:  # the same offset again: keep the longer piece
                if len(previous) >= size:
                    return
                self.held_bytes -= len(previous)
                self.transfers.held -= len(previous)
            self.held[offset] = bytearray(data)
            self.held_start = offset
        self.held_end = offset + size
        self.held_bytes += size
        self.transfers.held += size

    def lost(self) -> None:
        """Data of this file was never captured: no hash can be complete."""
        if self.position >= 0:
            self.give_up(None)

    def give_up(self, reason: str | None) -> None:
        """No hash for this transfer (a counted warning when ``reason`` is given)."""
        if reason is not None:
            self.transfers.diagnostics.warn("file_hash_abandoned", reason)
        self.position = -1
        self.transfers.held -= self.held_bytes
        self.held.clear()
        self.held_bytes = 0
        if self.stream is not None:
            self.stream.abandon()
            self.stream = None

    # -- the report ----------------------------------------------------------------------------

    def report(self, event: SmbEvent, file_size: int) -> None:
        """Fill ``event`` with this transfer's summary; keep the extracted file if complete."""
        ranges = self.ranges.all()
        size = max(file_size, ranges[-1][1] if ranges else 0)
        event.direction = UPLOAD if self.upload else DOWNLOAD
        event.file_size = size
        event.bytes_seen = sum(end - start for start, end in ranges)
        event.magic = self.magic
        event.sha256 = event.sha1 = event.md5 = None
        stream = self.stream
        if stream is None or self.position != size:
            self.give_up(None)  # not seen whole (or not hashed): any extracted part goes
            return
        self.transfers.await_digests(stream, event, self.first, self.last)
        self.stream = None


class FileData:
    """What crossed the wire of one open file, in each direction."""

    __slots__ = ("end_of_file", "upload", "download")

    def __init__(self, end_of_file: int | None = None) -> None:
        self.end_of_file = end_of_file  # the size the CREATE response gave
        self.upload: _Transfer | None = None
        self.download: _Transfer | None = None

    @property
    def last_seen(self) -> tuple[int, int] | None:
        """(time, frame) of the last data of this file, or None when none crossed the wire."""
        seen = [t.last for t in (self.upload, self.download) if t is not None]
        return max(seen) if seen else None


class _Route(BodyTap):
    """Where the rest of the message now being received goes: its remaining file data (from
    the decoder's ``body``, or straight from the TCP segments as the decoder's tap)."""

    __slots__ = ("transfer", "offset", "skip", "remaining")

    def __init__(self, transfer: _Transfer, offset: int, skip: int, remaining: int) -> None:
        self.transfer = transfer
        self.offset = offset  # the file offset of the next data byte
        self.skip = skip  # bytes of the message before that data (padding)
        self.remaining = remaining  # data bytes still to come

    def take(self, buf: Bytes, start: int, stop: int) -> None:
        if self.skip:
            if stop - start <= self.skip:
                self.skip -= stop - start
                return
            start, self.skip = start + self.skip, 0
        stop = min(stop, start + self.remaining)
        if stop <= start:
            return
        offset = self.offset
        self.offset += stop - start
        self.remaining -= stop - start
        self.transfer.add(offset, buf, start, stop)

    def gap(self, length: int) -> None:
        skipped = min(length, self.skip)
        self.skip -= skipped
        lost = min(length - skipped, self.remaining)
        if lost:
            self.transfer.lost()
            self.offset += lost
            self.remaining -= lost


class FileTracker:
    """The file data of one connection (one per decoder; the decoder's ``body`` and
    ``body_gap`` go straight here).

    A decoder calls ``data`` for each WRITE request and READ response on a file, ``report`` at
    its close (or, with a new close event, at the end of the capture or when pushed out), and
    sets its ``wants_body`` from ``routed`` after each message.
    """

    def __init__(self, transfers: Transfers) -> None:
        self.transfers = transfers
        self.hashing = transfers.hashing
        self._routes: list[_Route | None] = [None, None]  # by from_client

    def data(
        self,
        from_client: bool,
        file: FileData,
        offset: int,
        length: int,
        msg: bytes,
        data_offset: int,
        follows: int,
        time: int,
        frame: int,
    ) -> None:
        """``length`` bytes of file data at file ``offset``, from ``data_offset`` in the message
        ``msg`` of which ``follows`` more bytes will come to ``body``. From the client: written
        (upload); else read (download)."""
        if length <= 0 or offset < 0:
            return
        transfer = file.upload if from_client else file.download
        if transfer is None:
            transfer = _Transfer(self.transfers, from_client, time, frame)
            if from_client:
                file.upload = transfer
            else:
                file.download = transfer
        transfer.last = (time, frame)
        start = min(data_offset, len(msg))
        present = msg[start : start + length]
        if offset == 0 and transfer.magic is None:
            transfer.magic = sniff_magic(present)
        if not self.hashing:
            transfer.ranges.seen(
                offset, offset + length
            )  # as the message says: its data is skipped
            return
        if present:
            transfer.add(offset, present, 0, len(present))
        skip = data_offset + len(present) - len(msg)
        in_body = min(length - len(present), follows - skip)
        if in_body < length - len(present):
            transfer.lost()  # the message is shorter than the data it announces
        if in_body > 0:
            self._routes[from_client] = _Route(transfer, offset + len(present), skip, in_body)

    def new_message(self, from_client: bool) -> None:
        """A message begins in this direction: the rest of the previous one is over."""
        self._routes[from_client] = None

    def routed(self, from_client: bool) -> bool:
        """Whether file data of the last message still follows (the decoder's ``wants_body``)."""
        return self._routes[from_client] is not None

    def tap(self, from_client: bool) -> _Route | None:
        """Where the rest of the message goes (``Decoder.body_tap``)."""
        return self._routes[from_client]

    def body(self, from_client: bool, chunk: bytes) -> None:
        """The next bytes of the message's rest (``Decoder.body``)."""
        route = self._routes[from_client]
        if route is not None:
            route.take(chunk, 0, len(chunk))
            if not route.remaining:
                self._routes[from_client] = None

    def body_gap(self, from_client: bool, length: int) -> None:
        """Bytes of the message's rest that were never captured (``Decoder.body_gap``)."""
        route = self._routes[from_client]
        if route is not None:
            route.gap(length)
            if not route.remaining:
                self._routes[from_client] = None

    def report(
        self, file: FileData, event: SmbEvent, end_of_file: int | None = None
    ) -> list[SmbEvent]:
        """``event`` (a close) with the summary of what crossed the wire since the file was
        opened or last reported, and a copy of it for the other direction when data went both
        ways (upload first). ``end_of_file`` is the size the close gave, if any."""
        transfers = [t for t in (file.upload, file.download) if t is not None]
        file.upload = file.download = None
        if end_of_file is None:
            end_of_file = file.end_of_file or 0
        events = [event] + [event.copy() for _ in transfers[1:]]
        for transfer, target in zip(transfers, events, strict=False):
            transfer.report(target, end_of_file)
        return events
