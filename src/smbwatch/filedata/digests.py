"""sha256, sha1 and md5 of transferred files (those chosen: ``Options.hashes``), computed in a
process of their own.

The three digests of a gigabyte of file data take seconds of CPU (md5 alone runs at about
400 MB/s), as long as decoding the capture itself; computed inline they would halve smbwatch's
throughput. Instead each file's in-order bytes go to a child process that hashes them on another
core while the decoder goes on; the digests of a finished file come back when the child gets
there, and the events that carry them are held back meanwhile (``Transfers.settle``). In the
child, md5 (the slowest) runs on a thread of its own beside sha256 and sha1 (``ChildHashes``),
so that with a core to spare the hashing keeps up with the decoder. Where no child process can
be started, ``InlineDigests`` does the same work in the decoder.

Bytes that lie in the memory-mapped capture file itself are not copied at all: the child maps
the same file (its descriptor is inherited) and is told only where they are. Other bytes (a
compressed capture, a pcapng block, the start of a message) go down the pipe.

Parent to child, records of: op (1 byte), stream id (8), length (4), then for ``D`` that many
data bytes and for ``P`` that many pairs of offset and length (8 bytes each, in the machine's
byte order: the child runs on the same machine) of bytes in the capture file. ``D`` data of a
stream (consecutive data of one stream is merged into one record), ``P`` data by pointers
(consecutive pointers of one stream are gathered into one record), ``F`` the stream is finished
(its digests are wanted), ``A`` abandoned (forget it). Child to
parent, for each ``F`` in order: stream id (8), a status (1: ``HASHED``, ``FORGOTTEN`` when the
child had to forget the stream, ``UNREADABLE`` when it could not read the capture) and the
sha256 (32), sha1 (20) and md5 (16) digests (those not chosen: zeros, said as None).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import hashlib
import mmap
import os
import select
import signal
import struct
import sys
from collections.abc import Callable, Iterator
from operator import add
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from mypy_extensions import mypyc_attr

from smbwatch.options import HASHES, Bytes

if TYPE_CHECKING:
    from queue import SimpleQueue

RECORD: Final = struct.Struct("<cQI")
LENGTH: Final = struct.Struct("<I")  # the last field of RECORD, rewritten as a data record grows
REPLY: Final = struct.Struct("<QB32s20s16s")
HASHED: Final = 0
FORGOTTEN: Final = 1
UNREADABLE: Final = 2
FLUSH_AT: Final = 256 << 10  # parent: bytes gathered before the pipe is offered them
MAX_GATHERED = 16 << 20  # parent: what may wait for a busy child before the decoder waits too
READ_SIZE: Final = 1 << 20  # child: bytes read from the pipe at a time
JOIN: Final = 48  # child: pieces pointed to (about 64 KiB of frames) hashed at once
MAX_RUN: Final = 8192  # parent: offsets and lengths in one pointer record (64 KiB of it)
RELEASE_EVERY: Final = 16 << 20  # child: bytes of the capture read between hand-backs
POLL_EVERY: Final = 32  # parent: asks whether digests are in between looks at the replies
PIPE_SIZE: Final = 1 << 20  # the pipe's capacity (Linux's default limit for a process)
MAX_STREAMS = 1 << 16  # streams hashed at once (a hostile capture may open millions of files)
BATCH_SIZE: Final = 256 << 10  # child: data handed to the md5 thread at once
MAX_BATCHES: Final = 16  # child: batches waiting for it (each up to a read's worth more)
CHILD: Final = "from smbwatch.filedata.digests import serve; serve({}, {!r})"
UNREADABLE_REASON: Final = "the hashing process could not read the capture file"

Digests = tuple[str | None, str | None, str | None]  # sha256, sha1, md5 in hex (None: not chosen)


class DigestError(Exception):
    """The hashing process is gone: the digests still wanted will not come."""


@mypyc_attr(allow_interpreted_subclasses=True)
class DigestService:
    """Where ``Transfers`` sends file data and gets digests (a process, or inline): a base
    class rather than a Protocol, so that the compiled build calls it directly."""

    def data(self, stream: int, buf: Bytes, start: int, stop: int) -> None:
        """The next bytes of ``stream``: ``buf[start:stop]``."""
        raise NotImplementedError

    def finish(self, stream: int) -> None:
        raise NotImplementedError

    def abandon(self, stream: int) -> None:
        raise NotImplementedError

    def ready(self, stream: int) -> bool:
        raise NotImplementedError

    def take(self, stream: int) -> Digests | None:
        """The digests of a finished stream, waiting for them if need be; None when the stream
        had to be forgotten. Raises DigestError when they cannot be had."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


Raw = tuple[bytes, ...]  # the digests of a stream: sha256, sha1, md5 (or some of them)
Result = tuple[int, Raw]  # a status (HASHED, FORGOTTEN, UNREADABLE) and the digests


class _Skipped:
    """A digest not chosen: it takes the data and says nothing (its place in a reply stays
    zeros, an empty digest)."""

    def update(self, data: Bytes) -> None:
        pass

    def digest(self) -> bytes:
        return b""


def constructors(chosen: tuple[str, ...] = HASHES) -> tuple[Any, ...]:
    """The constructors of the three digests, in ``HASHES``' order, ``_Skipped`` for those not
    ``chosen``."""
    return tuple(getattr(hashlib, name) if name in chosen else _Skipped for name in HASHES)


class StreamHashes:
    """The digests (``algorithms``: all three unless a thread computes some) of every stream
    being hashed, at most ``MAX_STREAMS`` (oldest forgotten), and the streams some of whose
    bytes could not be read."""

    def __init__(self, algorithms: tuple[Any, ...] = constructors()) -> None:
        self.algorithms = algorithms
        self.none: Raw = (b"",) * len(algorithms)  # the digests of a stream that has none
        self.streams: dict[int, list[Any]] = {}
        self.unreadable: set[int] = set()

    def update(self, stream: int, data: Bytes) -> None:
        digests = self.streams.get(stream)
        if digests is None:
            if stream in self.unreadable:
                return
            if len(self.streams) >= MAX_STREAMS:
                del self.streams[next(iter(self.streams))]
            digests = self.streams[stream] = [algorithm() for algorithm in self.algorithms]
        for digest in digests:
            digest.update(data)

    def lose(self, stream: int) -> None:
        """Bytes of ``stream`` could not be read: its digests cannot be had."""
        self.streams.pop(stream, None)
        if len(self.unreadable) >= MAX_STREAMS:
            self.unreadable.pop()
        self.unreadable.add(stream)

    def finish(self, stream: int) -> Result:
        """The digests of a complete stream, or why there are none."""
        if stream in self.unreadable:
            self.unreadable.discard(stream)
            return UNREADABLE, self.none
        digests = self.streams.pop(stream, None)
        if digests is None:
            return FORGOTTEN, self.none
        return HASHED, tuple(digest.digest() for digest in digests)

    def abandon(self, stream: int) -> None:
        self.streams.pop(stream, None)
        self.unreadable.discard(stream)


def _taken(result: Result, chosen: tuple[str, ...]) -> Digests | None:
    """A stream's ``chosen`` digests in hex (the others None); None when it was forgotten
    (see ``DigestService.take``)."""
    status, (sha256, sha1, md5) = result
    if status == UNREADABLE:
        raise DigestError(UNREADABLE_REASON)
    if status != HASHED:
        return None
    return (
        sha256.hex() if "sha256" in chosen else None,
        sha1.hex() if "sha1" in chosen else None,
        md5.hex() if "md5" in chosen else None,
    )


class InlineDigests(DigestService):
    """The same service computed in the decoder's own process (no second core used)."""

    def __init__(self, chosen: tuple[str, ...] = HASHES) -> None:
        self.hashes = StreamHashes(constructors(chosen))
        self.chosen = chosen
        self.done: dict[int, Result] = {}

    def data(self, stream: int, buf: Bytes, start: int, stop: int) -> None:
        with memoryview(buf) as view:
            self.hashes.update(stream, view[start:stop])

    def finish(self, stream: int) -> None:
        self.done[stream] = self.hashes.finish(stream)

    def abandon(self, stream: int) -> None:
        self.hashes.abandon(stream)

    def ready(self, stream: int) -> bool:
        return True

    def take(self, stream: int) -> Digests | None:
        return _taken(self.done.pop(stream, (FORGOTTEN, self.hashes.none)), self.chosen)

    def close(self) -> None:
        self.hashes.streams.clear()


class DigestProcess(DigestService):
    """The parent's end of the hashing process: hand over data, collect digests as they come."""

    def __init__(
        self, capture: mmap.mmap | None = None, fileno: int = -1, chosen: tuple[str, ...] = HASHES
    ) -> None:
        """``capture``: the memory-mapped capture file (open as ``fileno``), whose bytes the
        child reads itself; ``chosen``: the digests computed (``HASHES``)."""
        import subprocess  # here: a run that hashes nothing never loads it

        if capture is None:
            fileno = -1
        self.chosen = chosen
        self.child = subprocess.Popen(  # this interpreter, this package
            [sys.executable, "-c", CHILD.format(fileno, ",".join(chosen))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=(fileno,) if fileno >= 0 else (),
        )
        assert self.child.stdin is not None and self.child.stdout is not None
        self.capture = capture
        self.requests = self.child.stdin.fileno()
        self.replies = self.child.stdout.fileno()
        with contextlib.suppress(AttributeError, OSError):  # Linux: fewer, larger pipe writes
            fcntl.fcntl(self.requests, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        os.set_blocking(self.requests, False)
        os.set_blocking(self.replies, False)
        # What waits for the pipe: ``buffer[head:tail]``, in a buffer allocated once.
        self.buffer = bytearray(MAX_GATHERED)
        self.head = self.tail = 0
        self.referenced = 0  # bytes of the capture referred to by records not yet written
        self.run_stream = -1  # the stream whose pointers are being gathered in ``run``
        self.run: list[int] = []  # offset, length, offset, length... in the capture file
        self.send_at = FLUSH_AT  # how much waiting data makes the next write
        self.open_data = -1  # the stream whose data record ends the buffer, if any
        self.open_start = 0  # ... where that record starts
        self.open_length = 0  # ... and its length so far
        self.incoming = bytearray()
        self.asked = 0  # times ``ready`` was asked since the last look at the replies
        self.done: dict[int, Result] = {}
        self.gone = False

    def data(self, stream: int, buf: Bytes, start: int, stop: int) -> None:
        size = stop - start
        if buf is self.capture:  # the child reads these bytes where they lie
            if stream != self.run_stream or len(self.run) >= MAX_RUN:
                self._end_run()
                self.run_stream = stream
            self.run.append(start)
            self.run.append(size)
            self.referenced += size
        else:
            self._end_run()
            if size > FLUSH_AT:  # in pieces, so that any piece fits the buffer
                for first in range(start, stop, FLUSH_AT):
                    self.data(stream, buf, first, min(first + FLUSH_AT, stop))
                return
            if stream != self.open_data or not self._room(size):
                self._room(RECORD.size + size)
                RECORD.pack_into(self.buffer, self.tail, b"D", stream, 0)
                self.open_data, self.open_start, self.open_length = stream, self.tail, 0
                self.tail += RECORD.size
            self.open_length += size
            LENGTH.pack_into(self.buffer, self.open_start + RECORD.size - 4, self.open_length)
            self.buffer[self.tail : self.tail + size] = buf[start:stop]
            self.tail += size
        if self.tail - self.head + self.referenced >= self.send_at:
            self._end_run()
            self._send(everything=False)

    def finish(self, stream: int) -> None:
        self._record(b"F", stream)

    def abandon(self, stream: int) -> None:
        self._record(b"A", stream)

    def ready(self, stream: int) -> bool:
        """Whether the digests of a finished stream are in. Every ``POLL_EVERY`` asks (the
        decoder asks after every frame that completes an event) what waits is offered to the
        pipe, so that the events held for a finished stream are not held until more file data
        comes, and what the child said is collected: a system call each, too dear for every
        frame or every finished file."""
        if stream not in self.done and not self.gone:
            self.asked += 1
            if self.asked >= POLL_EVERY:
                self.asked = 0
                self._end_run()
                self._send(everything=False)
                self._collect(block=False)
        return stream in self.done or self.gone

    def take(self, stream: int) -> Digests | None:
        if stream not in self.done:
            self.flush()
            while stream not in self.done and not self.gone:
                self._collect(block=True)
        if stream not in self.done:
            raise DigestError("the file hashing process ended early")
        return _taken(self.done.pop(stream), self.chosen)

    def flush(self) -> None:
        """Write out all that waits."""
        self._end_run()
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
        self._end_run()
        self._room(RECORD.size)
        RECORD.pack_into(self.buffer, self.tail, op, stream, 0)
        self.tail += RECORD.size
        self.open_data = -1

    def _end_run(self) -> None:
        """The pointers gathered for one stream become one record: a list append per segment
        costs less than packing a record for each."""
        if not self.run:
            return
        pointers = array.array("Q", self.run).tobytes()
        self.run.clear()
        self._room(RECORD.size + len(pointers))
        RECORD.pack_into(self.buffer, self.tail, b"P", self.run_stream, len(pointers) // 16)
        self.tail += RECORD.size
        self.buffer[self.tail : self.tail + len(pointers)] = pointers
        self.tail += len(pointers)
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
        self.referenced = 0
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
            stream, status, sha256, sha1, md5 = REPLY.unpack_from(self.incoming, start)
            self.done[stream] = status, (sha256, sha1, md5)
        del self.incoming[:usable]


def start_digests(
    capture: mmap.mmap | None = None, fileno: int = -1, chosen: tuple[str, ...] = HASHES
) -> DigestService:
    """The hashing process of the ``chosen`` digests (reading ``capture`` itself, if given),
    or inline hashing where it cannot be started."""
    try:
        return DigestProcess(capture, fileno, chosen)
    except OSError:
        return InlineDigests(chosen)


def serve(fileno: int = -1, chosen: str = ",".join(HASHES)) -> None:
    """The child: hash what comes on stdin (and the capture file open as ``fileno``, where
    records refer to it) with the ``chosen`` digests (names, comma-separated), answer on
    stdout, until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    # A parent gone (killed, or stopped while replies were due): end at the next reply, quietly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    requests = os.fdopen(sys.stdin.fileno(), "rb", buffering=0, closefd=False)
    replies = sys.stdout.buffer
    hashes = ChildHashes(replies, tuple(chosen.split(",")))
    capture = MappedCapture(fileno)
    buffer = bytearray(READ_SIZE)  # one buffer for the whole run: no allocation per read
    filled = 0
    try:
        with memoryview(buffer) as view:
            while count := requests.readinto(view[filled:]):
                filled += count
                used = _serve_records(view[:filled], hashes, capture)
                buffer[: filled - used] = bytes(view[used:filled])  # a record not yet complete
                filled -= used
    finally:
        hashes.close()


class ChildHashes:
    """The child's digests: sha256 and sha1 on its main thread, md5 (the slowest) on a
    thread of its own. hashlib lets go of the interpreter lock while it hashes, so the two run
    on two cores whenever the decoder leaves one free, and the digests of a gigabyte no longer
    take as long as md5, sha1 and sha256 one after the other. The md5 thread's jobs are handed
    over in batches (a hand-over may wake a thread: a system call), and done in order; it
    answers each finished stream once its part is done; without md5, it is given no data."""

    def __init__(self, replies: BinaryIO, chosen: tuple[str, ...] = HASHES) -> None:
        every = constructors(chosen)
        self.main = StreamHashes(every[:2])
        self.thread = HashThread(StreamHashes(every[2:]), replies)
        self.threaded = "md5" in chosen
        self.batch: list[Job] = []
        self.batched = 0  # bytes of data in the batch

    def update(self, stream: int, data: bytes | bytearray) -> None:
        """More of ``stream``; ``data`` belongs to the thread from now on (not to be changed)."""
        self.main.update(stream, data)
        if not self.threaded:  # the thread keeps only the stream's place in its order
            data = b""
        self._job(UPDATE, stream, data)
        self.batched += len(data)
        if self.batched >= BATCH_SIZE:
            self.hand_over()

    def lose(self, stream: int) -> None:
        self.main.lose(stream)
        self._job(LOSE, stream, None)

    def finish(self, stream: int) -> None:
        self._job(FINISH, stream, self.main.finish(stream))

    def abandon(self, stream: int) -> None:
        self.main.abandon(stream)
        self._job(ABANDON, stream, None)

    def hand_over(self) -> None:
        """The batch goes to the md5 thread (when the records read so far are handled, so
        that no answer waits for more records)."""
        if self.batch:
            self.thread.put(self.batch)
            self.batch, self.batched = [], 0

    def close(self) -> None:
        self.hand_over()
        self.thread.close()

    def _job(self, what: int, stream: int, payload: Any) -> None:
        self.batch.append((what, stream, payload))


UPDATE, LOSE, FINISH, ABANDON = range(4)  # the jobs of a HashThread
Job = tuple[int, int, Any]  # what to do, the stream, and its data or the main thread's result


class HashThread:
    """A ``StreamHashes`` on a thread of its own, fed batches of jobs in order. At most
    ``MAX_BATCHES`` wait: the thread that feeds it waits beyond that. Each finished stream's
    reply (the main thread's digests, then these) is written by this thread, all that is ready
    at once whenever no batch waits."""

    def __init__(self, hashes: StreamHashes, replies: BinaryIO) -> None:
        import threading  # here, with its queues: only the hashing process has this thread
        from queue import SimpleQueue

        self.hashes = hashes
        self.replies = replies
        self.batches: SimpleQueue[list[Job] | None] = SimpleQueue()
        self.free: SimpleQueue[None] = SimpleQueue()  # a token for each batch that may wait
        for _ in range(MAX_BATCHES):
            self.free.put(None)
        self.thread = threading.Thread(target=self._run, name="md5", daemon=True)
        self.thread.start()

    def put(self, batch: list[Job]) -> None:
        self.free.get()
        self.batches.put(batch)

    def close(self) -> None:
        """Every job done, every reply written."""
        self.batches.put(None)
        self.thread.join()

    def _run(self) -> None:
        try:
            self._work()
        except BrokenPipeError:  # the parent is gone: nobody wants the digests
            os._exit(0)
        except BaseException:  # a dead thread would leave the main one waiting for it forever
            import traceback

            traceback.print_exc()
            os._exit(1)  # the parent sees the child end: the digests still due are lost

    def _work(self) -> None:
        answers = bytearray()
        while (batch := self.batches.get()) is not None:
            for job in batch:
                self._do(job, answers)
            self.free.put(None)
            if answers and self.batches.empty():
                self._answer(answers)
        self._answer(answers)

    def _do(self, job: Job, answers: bytearray) -> None:
        what, stream, payload = job
        if what == UPDATE:
            self.hashes.update(stream, payload)
        elif what == LOSE:
            self.hashes.lose(stream)
        elif what == ABANDON:
            self.hashes.abandon(stream)
        else:
            status, digests = payload
            own_status, own = self.hashes.finish(stream)
            # UNREADABLE over FORGOTTEN over HASHED: the worse of the two parts' outcomes
            answers += REPLY.pack(stream, max(status, own_status), *digests, *own)

    def _answer(self, answers: bytearray) -> None:
        if answers:
            self.replies.write(answers)
            self.replies.flush()
            answers.clear()


class MappedCapture:
    """The child's map of the capture file. The records point ever further into it (the
    decoder reads the file in order), so the pages behind are handed back to the kernel as
    they go, and the child's memory does not grow with the capture. A file that cannot be
    mapped is empty: the records pointing into it cost their streams' digests."""

    def __init__(self, fileno: int) -> None:
        self.mapped: mmap.mmap | None = None
        if fileno >= 0:
            with contextlib.suppress(OSError, ValueError):
                self.mapped = mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
        self.view = memoryview(self.mapped if self.mapped is not None else b"")
        self.released = 0  # pages before this offset are handed back
        self.native = _native_gather()

    def gather(self, pointers: memoryview) -> Iterator[bytes] | None:
        """The bytes ``pointers`` (offset, length, offset, length... as unsigned 64-bit
        numbers) point to, joined: by the native path (``capture.native.gather``: a copy a
        piece, in C) where it is built, else ``JOIN`` pieces at a time, the joining in C with
        one Python slice a piece. None when the file is not that long."""
        if self.native is not None:
            joined = self.native(self.view, pointers) if len(pointers) else None
            if joined is None:
                return None
            self._release(pointers[0])
            return iter((joined,))
        listed: list[int] = pointers.tolist()
        starts = listed[0::2]
        stops = list(map(add, starts, listed[1::2]))
        if not starts or max(stops) > len(self.view):
            return None
        self._release(starts[0])
        piece = self.view.__getitem__
        return (
            b"".join(map(piece, map(slice, starts[i : i + JOIN], stops[i : i + JOIN])))
            for i in range(0, len(starts), JOIN)
        )

    def _release(self, offset: int) -> None:
        """The pages before ``offset``, far enough behind, handed back to the kernel."""
        if offset - self.released >= RELEASE_EVERY and self.mapped is not None:
            end = offset - offset % mmap.PAGESIZE
            self.mapped.madvise(mmap.MADV_DONTNEED, self.released, end - self.released)
            self.released = end


def _native_gather() -> Callable[[memoryview, memoryview], bytes | None] | None:
    """``capture.native.gather`` where the native path is built and wanted, else None."""
    from smbwatch.capture.streams import native_path  # the hashing process's own imports

    if not native_path():
        return None
    from smbwatch.capture.native import gather

    return gather


def _serve_records(view: memoryview, hashes: ChildHashes, capture: MappedCapture) -> int:
    """Handle the records in ``view`` (a data record as far as it has come); how many bytes
    were handled."""
    pos, end = 0, len(view)
    while end - pos >= RECORD.size:
        op, stream, length = RECORD.unpack_from(view, pos)
        start = pos + RECORD.size
        if op == b"D":
            stop = min(end, start + length)
            hashes.update(stream, bytes(view[start:stop]))  # the read buffer is reused
            if stop - start < length:  # the rest is still to come: a header for it
                RECORD.pack_into(view, stop - RECORD.size, b"D", stream, length - stop + start)
                pos = stop - RECORD.size
                break
            pos = stop
            continue
        if op == b"P":
            stop = start + 16 * length
            if stop > end:
                break  # the rest of the record is still to come
            pos = stop
            with view[start:stop].cast("Q") as cast:
                gathered = capture.gather(cast)
            if gathered is None:
                hashes.lose(stream)
                continue
            for data in gathered:
                hashes.update(stream, data)
            continue
        pos = start
        if op == b"F":
            hashes.finish(stream)
        else:
            hashes.abandon(stream)
    hashes.hand_over()
    return pos
