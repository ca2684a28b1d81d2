"""Messages from a worker process to its parent over a pipe, framed so that a worker's death
can never hang the parent.

A ``multiprocessing.Queue`` reads a message in one blocking call once its first byte arrives: a
worker killed halfway through writing one (the OOM killer, a kill -9) leaves the parent waiting
for the rest forever. Here each message is a length and a pickle written straight to the pipe,
and the parent reads whatever bytes are there with a timeout, keeping a partial message until the
rest comes; when the worker is gone its end of the pipe closes, the parent reads the end of the
stream and drops what was partial. The pipe's own buffer bounds how far a worker runs ahead: it
waits in ``send`` while the parent is not reading. While the parent waits for one worker, it
reads ahead what others have sent (``receive``'s ``meanwhile``: the other shares of a capture,
which the merge takes in its own order), up to ``HOLD`` bytes each, so that they do not stand
idle on a full pipe meanwhile.
"""

from __future__ import annotations

import os
import select
import struct
from collections.abc import Sequence
from typing import Any, Final

LENGTH: Final = struct.Struct("<Q")
READ_SIZE: Final = 1 << 20
HOLD: Final = 32 << 20  # bytes read ahead from a worker the parent is not waiting for


class Closed(Exception):
    """The worker's end of the pipe closed: no more messages will come."""


def pipe() -> tuple[int, int]:
    """A new pipe: (the parent's reading end, the worker's writing end). The parent closes the
    writing end once the worker is started, or the end of the stream never comes."""
    return os.pipe()


def send(fd: int, message: Any) -> None:
    """Write one message (the worker); blocks while the pipe is full."""
    import pickle  # here, as in _complete: a run without workers never loads it

    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(LENGTH.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


class Receiver:
    """The parent's end: ``receive`` returns the next message, or None after ``timeout``
    seconds without one (so the caller can look at signals), and raises ``Closed`` at the end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.start = 0  # where the next message begins in ``buffer``
        self.ended = False  # the end of the stream was read (messages may still be held)

    def receive(self, timeout: float, meanwhile: Sequence[Receiver] = ()) -> Any:
        """The next message; ``meanwhile``: other workers' ends, read ahead while waiting."""
        while True:
            message = self._complete()
            if message is not None:
                return message[0]
            if self.ended:
                raise Closed  # a message cut short by the worker's death is dropped
            poller = select.poll()
            # its own end always (a message larger than ``HOLD`` still comes whole), the
            # others while they hold less than that
            ends = {end.fd: end for end in meanwhile if end.has_room()} | {self.fd: self}
            for fd in ends:
                poller.register(fd, select.POLLIN)
            ready = poller.poll(int(timeout * 1000))
            if not ready:
                return None
            for fd, _ in ready:
                ends[fd].read()

    def has_room(self) -> bool:
        """Whether more can be read now: the stream goes on and not too much is held."""
        return not self.ended and len(self.buffer) - self.start < HOLD

    def read(self) -> None:
        """Read what the pipe holds (poll said it is there, or that the stream ended)."""
        chunk = os.read(self.fd, READ_SIZE)
        if not chunk:
            self.ended = True
        self.buffer += chunk

    def _complete(self) -> tuple[Any] | None:
        """The first message in the buffer when all of it is there (taken out)."""
        buffer, start = self.buffer, self.start
        if len(buffer) - start < LENGTH.size:
            return None
        (length,) = LENGTH.unpack_from(buffer, start)
        end = start + LENGTH.size + length
        if len(buffer) < end:
            return None
        import pickle  # here, as in send: a run without workers never loads it

        message = pickle.loads(memoryview(buffer)[start + LENGTH.size : end])
        self.start = end
        if end * 2 >= len(buffer):  # what was read is dropped once it is half the buffer
            del buffer[:end]
            self.start = 0
        return (message,)

    def close(self) -> None:
        os.close(self.fd)
