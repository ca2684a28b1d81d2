"""sha256, sha1 and md5 of transferred files, computed in a process of their own.

The three digests of a gigabyte of file data take seconds of CPU (md5 alone runs at about
400 MB/s), as long as decoding the capture itself; computed inline they would halve smbwatch's
throughput. Instead each file's in-order bytes go down a pipe to a child process that hashes them
on another core while the decoder goes on; the digests of a finished file come back when the
child gets there, and the events that carry them are held back meanwhile (``Transfers.settle``).
Where no child process can be started, ``InlineDigests`` does the same work in the decoder.

Parent to child, records of: op (1 byte), stream id (8), length (4), and that many data bytes.
``D`` data of a stream (consecutive data of one stream is merged into one record), ``F`` the
stream is finished (its digests are wanted), ``A`` abandoned (forget it). Child to parent, for
each ``F`` in order: stream id (8) and the sha256 (32), sha1 (20) and md5 (16) digests, all zero
when the child had to forget the stream (``MAX_STREAMS``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import select
import signal
import struct
import subprocess
import sys
from typing import Any, BinaryIO, Final

from smbwatch.options import Bytes

RECORD: Final = struct.Struct("<cQI")
LENGTH: Final = struct.Struct("<I")  # the last field of RECORD, rewritten as a data record grows
REPLY: Final = struct.Struct("<Q32s20s16s")
FLUSH_AT: Final = 256 << 10  # parent: bytes gathered before the pipe is offered them
MAX_GATHERED = 16 << 20  # parent: what may wait for a busy child before the decoder waits too
READ_SIZE: Final = 1 << 20  # child: bytes read from the pipe at a time
PIPE_SIZE: Final = 1 << 20  # the pipe's capacity (Linux's default limit for a process)
MAX_STREAMS = 1 << 16  # streams hashed at once (a hostile capture may open millions of files)
CHILD: Final = "from smbwatch.smb.digests import serve; serve()"
LOST: Final = (bytes(32), bytes(20), bytes(16))

Digests = tuple[str, str, str]  # sha256, sha1, md5, in hex


class DigestError(Exception):
    """The hashing process is gone: the digests still wanted will not come."""


class DigestService:
    """Where ``Transfers`` sends file data and gets digests (a process, or inline): a base
    class rather than a Protocol, so that the compiled build calls it directly."""

    def data(self, stream: int, data: Bytes) -> None:
        raise NotImplementedError

    def finish(self, stream: int) -> None:
        raise NotImplementedError

    def abandon(self, stream: int) -> None:
        raise NotImplementedError

    def ready(self, stream: int) -> bool:
        raise NotImplementedError

    def take(self, stream: int) -> Digests | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class StreamHashes:
    """The digests of every stream being hashed, at most ``MAX_STREAMS`` (oldest forgotten)."""

    def __init__(self) -> None:
        self.streams: dict[int, tuple[Any, Any, Any]] = {}

    def update(self, stream: int, data: Bytes) -> None:
        digests = self.streams.get(stream)
        if digests is None:
            if len(self.streams) >= MAX_STREAMS:
                del self.streams[next(iter(self.streams))]
            digests = self.streams[stream] = (hashlib.sha256(), hashlib.sha1(), hashlib.md5())
        for digest in digests:
            digest.update(data)

    def finish(self, stream: int) -> tuple[bytes, bytes, bytes]:
        """The raw digests of a complete stream (``LOST`` if it was forgotten)."""
        digests = self.streams.pop(stream, None)
        if digests is None:
            return LOST
        sha256, sha1, md5 = digests
        return sha256.digest(), sha1.digest(), md5.digest()

    def abandon(self, stream: int) -> None:
        self.streams.pop(stream, None)


def _hex(raw: tuple[bytes, bytes, bytes]) -> Digests | None:
    if raw == LOST:
        return None
    sha256, sha1, md5 = raw
    return sha256.hex(), sha1.hex(), md5.hex()


class InlineDigests(DigestService):
    """The same service computed in the decoder's own process (no second core used)."""

    def __init__(self) -> None:
        self.hashes = StreamHashes()
        self.done: dict[int, Digests | None] = {}

    def data(self, stream: int, data: Bytes) -> None:
        self.hashes.update(stream, data)

    def finish(self, stream: int) -> None:
        self.done[stream] = _hex(self.hashes.finish(stream))

    def abandon(self, stream: int) -> None:
        self.hashes.abandon(stream)

    def ready(self, stream: int) -> bool:
        return True

    def take(self, stream: int) -> Digests | None:
        return self.done.pop(stream, None)

    def close(self) -> None:
        self.hashes.streams.clear()


class DigestProcess(DigestService):
    """The parent's end of the hashing process: hand over data, collect digests as they come."""

    def __init__(self) -> None:
        self.child = subprocess.Popen(  # this interpreter, this package
            [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.child.stdin is not None and self.child.stdout is not None
        self.requests = self.child.stdin.fileno()
        self.replies = self.child.stdout.fileno()
        with contextlib.suppress(AttributeError, OSError):  # Linux: fewer, larger pipe writes
            fcntl.fcntl(self.requests, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        os.set_blocking(self.requests, False)
        os.set_blocking(self.replies, False)
        # What waits for the pipe: ``buffer[head:tail]``, in a buffer allocated once.
        self.buffer = bytearray(MAX_GATHERED)
        self.head = self.tail = 0
        self.send_at = FLUSH_AT  # how much waiting data makes the next write
        self.open_data = -1  # the stream whose data record ends the buffer, if any
        self.open_start = 0  # ... where that record starts
        self.open_length = 0  # ... and its length so far
        self.incoming = bytearray()
        self.done: dict[int, Digests | None] = {}
        self.gone = False

    def data(self, stream: int, data: Bytes) -> None:
        size = len(data)
        if size > FLUSH_AT:  # in pieces, so that any piece fits the buffer
            with memoryview(data) as view:
                for start in range(0, size, FLUSH_AT):
                    self.data(stream, view[start : start + FLUSH_AT])
            return
        if stream != self.open_data or not self._room(size):
            self._room(RECORD.size + size)
            RECORD.pack_into(self.buffer, self.tail, b"D", stream, 0)
            self.open_data, self.open_start, self.open_length = stream, self.tail, 0
            self.tail += RECORD.size
        self.open_length += size
        LENGTH.pack_into(self.buffer, self.open_start + RECORD.size - 4, self.open_length)
        self.buffer[self.tail : self.tail + size] = data
        self.tail += size
        if self.tail - self.head >= self.send_at:
            self._send(everything=False)

    def finish(self, stream: int) -> None:
        self._record(b"F", stream)

    def abandon(self, stream: int) -> None:
        self._record(b"A", stream)

    def ready(self, stream: int) -> bool:
        """Whether the digests of a finished stream are in (collecting what has come)."""
        if stream not in self.done and not self.gone:
            self._collect(block=False)
        return stream in self.done or self.gone

    def take(self, stream: int) -> Digests | None:
        """The digests of a finished stream, waiting for them if need be; None when the child
        had to forget the stream. Raises DigestError when the child died."""
        if stream not in self.done:
            self.flush()
            while stream not in self.done and not self.gone:
                self._collect(block=True)
        if stream not in self.done:
            raise DigestError("the file hashing process ended early")
        return self.done.pop(stream)

    def flush(self) -> None:
        """Write out all that waits."""
        self._send(everything=True)

    def close(self) -> None:
        """No more data: the child ends (what it still says is read, so it cannot block)."""
        assert self.child.stdin is not None and self.child.stdout is not None
        if not self.gone:
            self.flush()
        self.child.stdin.close()
        os.set_blocking(self.replies, True)
        while self.child.stdout.read(1 << 16):
            pass
        self.child.wait()
        self.child.stdout.close()

    def _record(self, op: bytes, stream: int) -> None:
        self._room(RECORD.size)
        RECORD.pack_into(self.buffer, self.tail, op, stream, 0)
        self.tail += RECORD.size
        self.open_data = -1

    def _room(self, size: int) -> bool:
        """Make room for ``size`` more bytes at the tail; whether the record open at the tail
        is still there to lengthen. What waits is moved to the front only when little waits:
        a child far behind is waited for instead, since moving a nearly full buffer each time
        the pipe takes a little would copy every byte many times over."""
        if self.tail + size <= len(self.buffer):
            return True
        if self.tail - self.head > len(self.buffer) // 4:
            self._send(everything=True)
        if self.head:
            waiting = self.tail - self.head
            self.buffer[:waiting] = self.buffer[self.head : self.tail]
            self.open_start -= self.head
            self.head, self.tail = 0, waiting
        if self.tail + size > len(self.buffer):
            self._send(everything=True)
        return self.open_data >= 0

    def _send(self, everything: bool) -> None:
        """Write what the pipe takes now, or (``everything``) all that waits, collecting the
        child's replies meanwhile so that neither side blocks the other."""
        with memoryview(self.buffer) as view:
            while self.head < self.tail and not self.gone:
                try:
                    self.head += os.write(self.requests, view[self.head : self.tail])
                    continue
                except BlockingIOError:
                    if not everything:
                        break
                except BrokenPipeError:
                    self.gone = True
                    break
                readable, _, _ = select.select([self.replies], [self.requests], [])
                if readable:
                    self._collect(block=False)
        if self.head > self.open_start:  # the open record is on its way: no lengthening it
            self.open_data = -1
        if self.head == self.tail or self.gone:
            self.head = self.tail = 0
            self.open_data = -1
        self.send_at = self.tail - self.head + FLUSH_AT  # a full pipe is not asked again at once

    def _collect(self, block: bool) -> None:
        if block:
            select.select([self.replies], [], [])
        try:
            chunk = os.read(self.replies, 1 << 16)
        except BlockingIOError:
            return
        if not chunk:
            self.gone = True
            return
        self.incoming += chunk
        usable = len(self.incoming) - len(self.incoming) % REPLY.size
        for start in range(0, usable, REPLY.size):
            stream, sha256, sha1, md5 = REPLY.unpack_from(self.incoming, start)
            self.done[stream] = _hex((sha256, sha1, md5))
        del self.incoming[:usable]


def start_digests() -> DigestService:
    """The hashing process, or inline hashing where it cannot be started."""
    try:
        return DigestProcess()
    except OSError:
        return InlineDigests()


def serve() -> None:
    """The child: hash what comes on stdin, answer on stdout, until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    requests = os.fdopen(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
    replies = sys.stdout.buffer
    hashes = StreamHashes()
    buffer = bytearray(READ_SIZE)  # one buffer for the whole run: no allocation per read
    filled = 0
    with memoryview(buffer) as view:
        while count := requests.readinto(view[filled:]):
            filled += count
            used = _serve_records(view[:filled], hashes, replies)
            buffer[: filled - used] = bytes(view[used:filled])  # the rest: a header at most
            filled -= used


def _serve_records(view: memoryview, hashes: StreamHashes, replies: BinaryIO) -> int:
    """Handle the records in ``view`` (a data record as far as it has come); how many bytes
    were handled."""
    pos, end = 0, len(view)
    answers = bytearray()
    while end - pos >= RECORD.size:
        op, stream, length = RECORD.unpack_from(view, pos)
        start = pos + RECORD.size
        if op == b"D":
            stop = min(end, start + length)
            hashes.update(stream, view[start:stop])
            if stop - start < length:  # the rest is still to come: a header for it
                RECORD.pack_into(view, stop - RECORD.size, b"D", stream, length - stop + start)
                pos = stop - RECORD.size
                break
            pos = stop
            continue
        pos = start
        if op == b"F":
            answers += REPLY.pack(stream, *hashes.finish(stream))
        else:
            hashes.abandon(stream)
    if answers:
        replies.write(answers)
        replies.flush()
    return pos
