"""Messages from a worker process to its parent over a pipe, framed so that a worker's death
can never hang the parent.

A ``multiprocessing.Queue`` reads a message in one blocking call once its first byte arrives: a
worker killed halfway through writing one (the OOM killer, a kill -9) leaves the parent waiting
for the rest forever. Here each message is a length and a pickle written straight to the pipe,
and the parent reads whatever bytes are there with a timeout, keeping a partial message until the
rest comes; when the worker is gone its end of the pipe closes, the parent reads the end of the
stream and drops what was partial. The pipe's own buffer bounds how far a worker runs ahead: it
waits in ``send`` while the parent is not reading.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
from typing import Any, Final

LENGTH: Final = struct.Struct("<Q")
READ_SIZE: Final = 1 << 20


class Closed(Exception):
    """The worker's end of the pipe closed: no more messages will come."""


def pipe() -> tuple[int, int]:
    """A new pipe: (the parent's reading end, the worker's writing end). The parent closes the
    writing end once the worker is started, or the end of the stream never comes."""
    return os.pipe()


def send(fd: int, message: Any) -> None:
    """Write one message (the worker); blocks while the pipe is full."""
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
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)

    def receive(self, timeout: float) -> Any:
        while True:
            message = self._complete()
            if message is not None:
                return message[0]
            if not self.poller.poll(int(timeout * 1000)):
                return None
            chunk = os.read(self.fd, READ_SIZE)
            if not chunk:
                raise Closed  # a message cut short by the worker's death is dropped
            self.buffer += chunk

    def _complete(self) -> tuple[Any] | None:
        """The first message in the buffer when all of it is there (taken out)."""
        if len(self.buffer) < LENGTH.size:
            return None
        (length,) = LENGTH.unpack_from(self.buffer)
        end = LENGTH.size + length
        if len(self.buffer) < end:
            return None
        message = pickle.loads(memoryview(self.buffer)[LENGTH.size : end])
        del self.buffer[:end]
        return (message,)

    def close(self) -> None:
        os.close(self.fd)
