"""The pipe from a worker process to its parent: whole messages in order, and a writer that dies
at any point, halfway through a message included, ends the stream instead of hanging the reader."""

from __future__ import annotations

import os
import pickle
import time

import pytest

from smbwatch import workerpipe

pytestmark = pytest.mark.unit


def forked(write) -> tuple[int, workerpipe.Receiver]:
    """A child process running ``write(fd)`` on a new pipe; (its pid, the parent's receiver)."""
    reading, writing = workerpipe.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write, then leave at once (as a killed worker would)
        os.close(reading)
        try:
            write(writing)
        finally:
            os._exit(0)
    os.close(writing)
    return pid, workerpipe.Receiver(reading)


def receive_all(receiver: workerpipe.Receiver, limit: float = 20.0) -> list:
    """Every message until the stream ends; fails (never hangs) if it does not end in time."""
    got, deadline = [], time.monotonic() + limit
    while True:
        assert time.monotonic() < deadline, "the stream did not end"
        try:
            message = receiver.receive(0.1)
        except workerpipe.Closed:
            return got
        if message is not None:
            got.append(message)


def test_messages_arrive_whole_and_in_order_larger_than_the_pipe() -> None:
    sent = [("events", list(range(n))) for n in (0, 1, 50_000, 3)] + [None, ("done", 7)]
    pid, receiver = forked(lambda fd: [workerpipe.send(fd, m) for m in sent])
    got = receive_all(receiver)
    os.waitpid(pid, 0)
    receiver.close()
    assert got == [m for m in sent if m is not None]  # None is "nothing yet", never a message


@pytest.mark.parametrize("cut", [1, 7, 8, 9, 1000, 200_000])
def test_a_writer_that_dies_inside_a_message_ends_the_stream(cut: int) -> None:
    """The bytes of two whole messages, then the first ``cut`` bytes of a third (its length
    field alone, or part of its pickle): the two are read, the third dropped, no hang."""
    whole = ("events", list(range(1000)))
    large = ("events", ["x" * 100] * 100_000)

    def write(fd: int) -> None:
        workerpipe.send(fd, whole)
        workerpipe.send(fd, whole)
        third = pickle.dumps(large)  # framed as send frames it, then cut short
        data = memoryview(workerpipe.LENGTH.pack(len(third)) + third)[:cut]
        while data:
            data = data[os.write(fd, data) :]

    pid, receiver = forked(write)
    got = receive_all(receiver)
    os.waitpid(pid, 0)
    receiver.close()
    assert got == [whole, whole]


def test_nothing_yet_is_none_after_the_timeout() -> None:
    reading, writing = workerpipe.pipe()
    receiver = workerpipe.Receiver(reading)
    started = time.monotonic()
    assert receiver.receive(0.05) is None
    assert time.monotonic() - started >= 0.04
    workerpipe.send(writing, "late")
    assert receiver.receive(0.05) == "late"
    os.close(writing)
    with pytest.raises(workerpipe.Closed):
        receiver.receive(0.05)
    receiver.close()


def test_a_message_larger_than_what_is_read_ahead_comes_whole() -> None:
    """Waiting for one worker's message larger than ``HOLD`` while reading another's ahead:
    the waited-for end is read to the end of its message whatever it holds, and the other's
    message comes whole after."""
    big = ("events", b"x" * (workerpipe.HOLD + (1 << 20)))
    first_pid, first = forked(lambda fd: workerpipe.send(fd, big))
    other_pid, other = forked(lambda fd: workerpipe.send(fd, big))
    deadline = time.monotonic() + 20
    while (message := first.receive(0.1, [other])) is None:
        assert time.monotonic() < deadline, "the message larger than HOLD never came"
    assert message == big
    assert receive_all(first) == [] and receive_all(other) == [big]
    for pid in (first_pid, other_pid):
        os.waitpid(pid, 0)
    first.close()
    other.close()
