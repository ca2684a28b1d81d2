"""Inputs read by a pool of long-lived worker processes, events streamed back in input order.

``jobs`` workers are forked once per run, never one per input: forking one, and the first-use
work of its readers, costs more than a small log takes to read. The parent gives each worker up
to ``AHEAD`` inputs at a time, in order, through a pipe of its own, and reads their events back
through another (``workerpipe``: a worker that dies, even halfway through a message, costs its
input and never hangs the parent); a worker waits while its pipe is full, so memory is bounded
by a few batches per worker whatever the inputs' sizes. The parent reads the inputs in the order
they were given, so the output does not depend on which worker finishes first.

A large input may be read in shares (``Work.shares``): every share by a worker of its own, all
at once, each event sent with a key that says where it stands in the whole input's order (keys
never decrease within a share); the parent merges the shares by key, equal keys share by share.
What the shares are is the reader's business (for a capture, its connections by a hash of their
endpoints): this module knows nothing of captures or logs; the pipeline stands on it, not the
other way round. Events travel as columns (``events.columns``: a fraction of the cost of
pickling each event); when all the parent does with them is write them as text, each as a line
of its own (JSON lines), the workers write the lines (``Readers.render``) and only those travel:
the parent then merges and writes text, and turning events into text, which cost it more than
the workers' decoding saved, is shared among the workers. Likewise, when the parent only stores
the events of whole inputs in columns (the case), the workers make the columns
(``Readers.batch``: Arrow record batches) and the parent stages them as they come, without
making an event of a row. Workers are forked (Linux, the
platform smbwatch is made for); where a process cannot fork, inputs are read one after the
other in the calling process.
"""

from __future__ import annotations

import heapq
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from functools import partial
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from smbwatch import workerpipe
from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.events import SmbEvent, columns, from_stored
from smbwatch.interrupt import Interrupted, check
from smbwatch.options import Options

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

BATCH: Final = 2000  # events sent at once
SEND_EVERY: Final = 0.05  # seconds: a share's events are sent at least this often (the merge
# waits for every share's next key)
AHEAD: Final = 2  # inputs (or shares) given to a worker before it has finished the ones it has
WAIT: Final = 0.2  # seconds between looks at whether a stop was asked for, while a worker is silent
# The events of one input: input, diagnostics, input format, options (``pipeline.input_events``).
InputReader = Callable[[InputFile, Diagnostics, str | None, Options], Iterator[SmbEvent]]
Share = tuple[int, int]  # (index, count): this share of ``count``
# One share of one input, each event with its key in the whole input's order: input,
# diagnostics, input format, options, share (``pipeline.share_events``).
ShareReader = Callable[
    [InputFile, Diagnostics, str | None, Options, Share], Iterator[tuple[int, SmbEvent]]
]
Task = tuple[InputFile, Share | None]  # an input to read whole (None), or one share of it
Render = Callable[[SmbEvent], str]  # an event as a line of text (``sinks.jsonl.line``)


class Batching:
    """How the events of a whole input travel as batches of columns (``arrow``): ``make`` is
    what a worker sends of some of them (told where to count what does not fit), ``read``
    what the parent makes of it again."""

    make: Callable[[list[SmbEvent], Diagnostics], Any]
    read: Callable[[Any], Any]

    def __init__(
        self,
        make: Callable[[list[SmbEvent], Diagnostics], Any],
        read: Callable[[Any], Any],
    ) -> None:
        self.make = make
        self.read = read


Item = TypeVar("Item")


class Readers:
    """What the workers run: the events of a whole input, and of one share of one; with
    ``render``, they send each event as that line of text rather than the event; with
    ``batch``, the events of a whole input as the batches it makes (a share's events are
    merged by key, one by one: they travel as events)."""

    whole: InputReader
    share: ShareReader
    render: Render | None
    batch: Batching | None

    def __init__(
        self,
        whole: InputReader,
        share: ShareReader,
        render: Render | None = None,
        batch: Batching | None = None,
    ) -> None:
        self.whole = whole
        self.share = share
        self.render = render
        self.batch = batch


class Work:
    """One input to read, named by the user or not (found in a directory), in how many shares
    (1: whole)."""

    source: InputFile
    explicit: bool
    shares: int

    def __init__(self, source: InputFile, explicit: bool, shares: int = 1) -> None:
        self.source = source
        self.explicit = explicit
        self.shares = shares


class InputRun:
    """One input as it is read: its events; once they are all read, what reading it cost
    (``diagnostics``) and, for an input that cannot be used, why (``error``)."""

    def __init__(self, source: InputFile, explicit: bool) -> None:
        self.source = source
        self.explicit = explicit  # named by the user, not found in a directory
        self.events: Iterator[SmbEvent] = iter(())
        self.lines: Iterator[str] | None = None  # the events as the workers wrote them (render)
        self.batches: Iterator[Any] | None = None  # ... or as the batches they made (batch)
        self.written = 0  # events its reader wrote itself (a cluster's workers: Parquet)
        self.diagnostics = Diagnostics()
        self.error: InputError | None = None

    @property
    def path(self) -> str:
        """What the input is called: its path, or ``archive.zip/member``."""
        return self.source.name


class Progress(Protocol):
    """Who is told how the reading goes (``sinks.progress``): the inputs, then each read."""

    def begin(self, sources: list[InputFile]) -> None: ...

    def counted(self, events: Iterable[SmbEvent]) -> Iterator[SmbEvent]: ...

    def counted_rows(self, batches: Iterable[Sized]) -> Iterator[Any]: ...

    def finished(self, run: InputRun) -> None: ...


def can_fork() -> bool:
    """Whether inputs can be read by worker processes here (see the module)."""
    import multiprocessing  # here, as in _Pool: a run of one process never loads it (4 ms)

    return "fork" in multiprocessing.get_all_start_methods()


# --- a worker -----------------------------------------------------------------------------------
# Messages to a worker: ("task", Task). Its task pipe closed: no more tasks, end.
# Messages from it, per task: ("events", Packed)... then ("done", Diagnostics, InputError | None).
# Events as they travel: every field's column (or, rendered, each event's line; batched, the
# batch), how many, and for a share each event's key.
Packed = tuple[Any, int, list[int] | None]


def _serve(
    readers: Readers,
    input_format: str | None,
    options: Options,
    tasks: int,
    results: int,
    finished: Any,
    slot: int,
    others: list[int],
) -> None:
    """A worker: the tasks it is given, one after the other, until its task pipe closes.
    ``others``: the parent's ends of every worker's pipes, its own included, closed here (a
    worker holding a task pipe open would keep its worker from ever seeing its end)."""
    for fd in others:
        os.close(fd)
    receiver = workerpipe.Receiver(tasks)
    try:
        while True:
            try:
                message = receiver.receive(WAIT)
            except workerpipe.Closed:
                return
            if message is None:
                check()
                continue
            source, share = message[1]
            _run_task(readers, input_format, options, source, share, results)
            finished[slot] += 1
    except (Interrupted, BrokenPipeError):
        return  # the parent stops too (it was signalled first, or with us), or is gone


def _run_task(
    readers: Readers,
    input_format: str | None,
    options: Options,
    source: InputFile,
    share: Share | None,
    results: int,
) -> None:
    diagnostics = Diagnostics()
    error = None
    batch = readers.batch if share is None else None
    sender = _Sender(results, share is not None, readers.render, batch, diagnostics)
    try:
        if share is None:
            for event in readers.whole(source, diagnostics, input_format, options):
                sender.add(0, event)
        else:
            for key, event in readers.share(source, diagnostics, input_format, options, share):
                sender.add(key, event)
        sender.send()
    except InputError as exc:
        error = exc
    except (Interrupted, BrokenPipeError):
        raise
    except Exception as exc:  # a bug must cost this input, not the whole run
        diagnostics.damaged(source.name, f"internal error: {exc!r}")
    workerpipe.send(results, ("done", diagnostics, error))


class _Sender:
    """A task's events, sent in batches of ``BATCH`` (a share's also every ``SEND_EVERY``)."""

    def __init__(
        self,
        results: int,
        keyed: bool,
        render: Render | None,
        batch: Batching | None,
        diagnostics: Diagnostics,
    ) -> None:
        self.results = results
        self.keyed = keyed
        self.render = render
        self.batch = batch
        self.diagnostics = diagnostics
        self.events: list[SmbEvent] = []
        self.keys: list[int] = []
        self.sent = time.monotonic()

    def add(self, key: int, event: SmbEvent) -> None:
        self.events.append(event)
        if self.keyed:
            self.keys.append(key)
            if time.monotonic() - self.sent >= SEND_EVERY:
                self.send()
        if len(self.events) >= BATCH:
            self.send()

    def send(self) -> None:
        if self.events:
            keys = self.keys if self.keyed else None
            payload: Any
            if self.render is not None:
                payload = [self.render(event) for event in self.events]
            elif self.batch is not None:
                payload = self.batch.make(self.events, self.diagnostics)
            else:
                payload = columns(self.events)
            packed: Packed = (payload, len(self.events), keys)
            workerpipe.send(self.results, ("events", packed))
        self.events, self.keys = [], []
        self.sent = time.monotonic()


# --- the parent ---------------------------------------------------------------------------------
class _Worker:
    process: BaseProcess
    tasks: int  # the writing end of its task pipe
    results: workerpipe.Receiver
    given: int  # tasks given; the shared ``finished`` counts those it has done

    def __init__(
        self,
        process: BaseProcess,
        tasks: int,
        results: workerpipe.Receiver,
        given: int = 0,
    ) -> None:
        self.process = process
        self.tasks = tasks
        self.results = results
        self.given = given


class _Pending:
    """An input given to workers (one per share), whose events the parent has yet to read."""

    work: Work
    slots: list[int]

    def __init__(self, work: Work) -> None:
        self.work = work
        self.slots = []


class _Pool:
    """``jobs`` worker processes and what they were given."""

    def __init__(
        self, readers: Readers, input_format: str | None, options: Options, jobs: int
    ) -> None:
        import multiprocessing  # here: a run of one process never loads it (4 ms)

        self.context = multiprocessing.get_context("fork")
        self.arguments = (readers, input_format, options)
        self.rendered = readers.render is not None  # the workers send lines, not events
        self.batching = readers.batch  # ... or whole inputs' batches
        self.finished = self.context.RawArray("q", jobs)  # tasks done, per worker
        self.workers: list[_Worker] = []
        for slot in range(jobs):
            self.workers.append(self._start(slot))

    def _start(self, slot: int) -> _Worker:
        task_reading, task_writing = workerpipe.pipe()
        reading, writing = workerpipe.pipe()
        others = [
            fd
            for index, worker in enumerate(self.workers)
            if index != slot  # (a worker being replaced: its pipes are closed already)
            for fd in (worker.tasks, worker.results.fd)
        ] + [task_writing, reading]  # the parent's ends of its own
        arguments = (*self.arguments, task_reading, writing, self.finished, slot, others)
        process = self.context.Process(
            target=_serve, args=arguments, daemon=True, name=f"smbwatch-worker-{slot}"
        )
        try:
            process.start()
        finally:
            os.close(writing)  # the worker's alone now: its death ends the stream
            os.close(task_reading)
        return _Worker(process, task_writing, workerpipe.Receiver(reading))

    def busy(self, slot: int) -> int:
        """Tasks given to the worker that it has not finished."""
        return self.workers[slot].given - self.finished[slot]

    def give(self, slot: int, task: Task) -> None:
        worker = self.workers[slot]
        worker.given += 1
        workerpipe.send(worker.tasks, ("task", task))

    def replace(self, slot: int, lost: list[Task]) -> None:
        """A new worker in place of one that died, given the tasks it had not begun."""
        self._end(self.workers[slot], kill=True)
        self.finished[slot] = 0
        self.workers[slot] = self._start(slot)
        for task in lost:
            self.give(slot, task)

    def close(self, wait: bool) -> None:
        """End the workers: told to (``wait``: they are idle), else killed."""
        for worker in self.workers:
            self._end(worker, kill=not wait)

    @staticmethod
    def _end(worker: _Worker, kill: bool) -> None:
        os.close(worker.tasks)  # the worker ends when it sees no more tasks can come
        if kill:
            worker.process.kill()
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.results.close()


class _Scheduler:
    """Gives inputs to the pool's workers in order, as they have room, and reads their events
    back in the same order."""

    def __init__(self, pool: _Pool, work: list[Work]) -> None:
        self.pool = pool
        self.waiting = deque(work)
        self.pending: deque[_Pending] = deque()  # given, in order; the first is being read

    def give(self) -> None:
        """Give waiting inputs, in order, to the workers with room (the shares of one input to
        as many distinct workers, all at once)."""
        pool = self.pool
        while self.waiting:
            work = self.waiting[0]
            free = sorted(
                (pool.busy(slot), slot)
                for slot in range(len(pool.workers))
                if pool.busy(slot) < AHEAD
            )
            if len(free) < work.shares:
                return
            self.waiting.popleft()
            pending = _Pending(work)
            for index, (_, slot) in enumerate(free[: work.shares]):
                share = None if work.shares == 1 else (index, work.shares)
                pool.give(slot, (work.source, share))
                pending.slots.append(slot)
            self.pending.append(pending)

    def runs(self) -> Iterator[InputRun]:
        while self.waiting or self.pending:
            self.give()
            pending = self.pending[0]
            run = InputRun(pending.work.source, pending.work.explicit)
            if self.pool.rendered:
                run.lines = self._items(pending, run, _lines)
            elif self.pool.batching is not None and pending.work.shares == 1:
                unpack = partial(_batch, self.pool.batching.read)
                run.batches = self._whole(pending.slots[0], run, unpack)
            else:
                run.events = self._items(pending, run, _events)
            yield run
            for _ in run.lines or run.batches or run.events:
                pass  # what the reader left unread: the workers must go on
            self.pending.popleft()

    def _items(
        self, pending: _Pending, run: InputRun, unpack: Callable[[Packed], list[Item]]
    ) -> Iterator[Item]:
        """What the workers send for the input (events or lines), its shares merged."""
        if pending.work.shares == 1:
            return self._whole(pending.slots[0], run, unpack)
        return merged([self._keyed(slot, run, unpack) for slot in pending.slots])

    def _whole(
        self, slot: int, run: InputRun, unpack: Callable[[Packed], list[Item]]
    ) -> Iterator[Item]:
        """What one worker sends for the input."""
        while (packed := self._next(slot, run)) is not None:
            yield from unpack(packed)

    def _keyed(
        self, slot: int, run: InputRun, unpack: Callable[[Packed], list[Item]]
    ) -> Iterator[tuple[int, Item]]:
        """What one worker sends for its share of the input, each with its key."""
        while (packed := self._next(slot, run)) is not None:
            yield from zip(packed[2] or (), unpack(packed), strict=True)

    def _next(self, slot: int, run: InputRun) -> Packed | None:
        """The worker's next events for ``run``, None once it is done with it (giving out
        waiting inputs meanwhile); a stop asked for is honoured within ``WAIT``, and a worker
        that died without a word (killed, out of memory) costs the input."""
        others = [
            self.pool.workers[other].results for other in self.pending[0].slots if other != slot
        ]
        while True:
            check()
            self.give()
            worker = self.pool.workers[slot]
            try:
                message = worker.results.receive(WAIT, others)
            except workerpipe.Closed:
                self._lost(slot, run)
                return None
            if message is None:
                continue
            if message[0] == "events":
                packed: Packed = message[1]
                return packed
            run.diagnostics.merge(message[1])
            if run.error is None:
                run.error = message[2]
            return None

    def _lost(self, slot: int, run: InputRun) -> None:
        """The worker died while reading ``run``: the input is damaged; what it had been given
        after it goes to a new worker."""
        process = self.pool.workers[slot].process
        process.join(timeout=WAIT)
        later = [
            (pending.work.source, _share_of(pending, slot))
            for pending in list(self.pending)[1:]
            if slot in pending.slots
        ]
        self.pool.replace(slot, later)
        run.diagnostics.damaged(run.path, f"its worker process ended early ({process.exitcode})")


def merged(shares: Sequence[Iterable[tuple[int, Item]]]) -> Iterator[Item]:
    """The events (or lines) of an input's shares in the whole input's order: by key, equal
    keys share by share (in the order of ``shares``)."""
    return map(itemgetter(1), heapq.merge(*shares, key=itemgetter(0)))


def _events(packed: Packed) -> list[SmbEvent]:
    return from_stored(packed[0], packed[1])


def _lines(packed: Packed) -> list[str]:
    return packed[0]


def _batch(read: Callable[[Any], Any], packed: Packed) -> list[Any]:
    return [read(packed[0])]


def _share_of(pending: _Pending, slot: int) -> Share | None:
    if pending.work.shares == 1:
        return None
    return (pending.slots.index(slot), pending.work.shares)


def parallel_inputs(
    readers: Readers,
    work: list[Work],
    input_format: str | None,
    jobs: int,
    options: Options,
) -> Iterator[InputRun]:
    """Every input read by a pool of up to ``jobs`` workers (a reader raises InputError for an
    input it cannot use), in order, each as an InputRun to be read before the next. An input in
    shares needs as many workers (``shares`` is at most ``jobs``)."""
    needed = min(jobs, sum(item.shares for item in work))
    pool = _Pool(readers, input_format, options, max(needed, 1))
    done = False
    try:
        yield from _Scheduler(pool, work).runs()
        done = True
    finally:
        pool.close(wait=done)
