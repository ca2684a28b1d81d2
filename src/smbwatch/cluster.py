"""Inputs read as Dask tasks, beyond one machine: on a local cluster (``--engine dask``) or on an
existing one (``--scheduler tcp://HOST:8786``).

The tasks run the very functions the local workers run: ``pipeline.input_events`` for an input,
``pipeline.share_events`` for each share of a large capture (one share per worker of the
cluster, as ``-j`` does on one machine). A Parquet dataset (``-f parquet -o DIR``) is written by
the workers themselves, each task its own files (``write_task``, with the sink's writer the CLI
hands down), so the events never travel to this process and its memory does not grow with the
inputs; the dataset holds the events a local run writes. For any other output, each task
returns its events as columns (``events.columns``) with what reading cost (diagnostics, the
input's error), and this process takes them back in input order, a capture's shares merged by
key (``parallel.merged``), writing what a local run writes. A task that fails for a bug costs
its input, as with local workers; a worker that dies is Dask's to run elsewhere (a writing task
run again writes the same files over).

Inputs are paths every worker can read (a shared file system), or fsspec URLs (``s3://...``,
``gcs://...``, ``file://...``; a URL naming a directory means every file below it), which a
worker first copies to its own disk (fsspec's ``simplecache``, deleted after): the readers
memory-map and seek. dask.distributed and fsspec are an optional extra (``smbwatch[cluster]``),
imported only here.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pyarrow as pa

from smbwatch.arrow import event_batches
from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.events import SmbEvent, columns, from_stored
from smbwatch.options import Options
from smbwatch.parallel import InputRun, Share, merged
from smbwatch.pipeline import input_events, share_events, shares

# What a task returns: every field's column, how many events, each event's key (a share), the
# diagnostics and the input's error.
Result = tuple[list[list[Any]], int, list[int], Diagnostics, InputError | None]
# What a task that writes its events returns: how many it wrote, the diagnostics, the error.
Written = tuple[int, Diagnostics, InputError | None]
# Writes a task's events where the workers are (a sink's, handed down by the CLI: the batches,
# the task's name for its files); how many.
PartWriter = Callable[[Iterable[pa.RecordBatch], str], int]


class ClusterError(InputError):
    """The cluster cannot be had (the extra is missing, the scheduler cannot be reached): a
    user error."""


def read_task(
    source: InputFile, input_format: str | None, options: Options, share: Share | None
) -> Result:
    """One input (``share`` None) or one share of one, read in a worker of the cluster; its
    events come back."""
    task = _Task(source, input_format, options, share)
    events: list[SmbEvent] = []
    keys: list[int] = []
    for key, event in task.events():
        keys.append(key)
        events.append(event)
    return columns(events), len(events), keys if share else [], task.diagnostics, task.error


def write_task(
    source: InputFile,
    input_format: str | None,
    options: Options,
    share: Share | None,
    writer: PartWriter,
    part: str,
) -> Written:
    """One input or one share of one, read in a worker of the cluster, its events written there
    by ``writer`` in files named after ``part``: only how many comes back."""
    task = _Task(source, input_format, options, share)
    written = 0
    try:
        written = writer(event_batches((e for _, e in task.events()), task.diagnostics), part)
    except Exception as exc:  # where the events go cannot be written: this input's loss
        task.diagnostics.damaged(source.name, f"its events could not be written: {exc!r}")
    return written, task.diagnostics, task.error


class _Task:
    """One input or one share of one, as a worker reads it: its events, each with its key (a
    share's), as they come; once they are read, what reading cost and the input's error."""

    def __init__(
        self, source: InputFile, input_format: str | None, options: Options, share: Share | None
    ) -> None:
        self.source = source
        self.input_format = input_format
        self.options = options
        self.share = share
        self.diagnostics = Diagnostics()
        self.error: InputError | None = None

    def events(self) -> Iterator[tuple[int, SmbEvent]]:
        source, diagnostics = self.source, self.diagnostics
        folder = tempfile.mkdtemp(prefix="smbwatch-") if "://" in source.path else None
        try:
            local = source if folder is None else _fetched(source, folder)
            if self.share is None:
                read = input_events(local, diagnostics, self.input_format, self.options)
                keyed: Iterator[tuple[int, SmbEvent]] = ((0, event) for event in read)
            else:
                keyed = share_events(
                    local, diagnostics, self.input_format, self.options, self.share
                )
            for key, event in keyed:
                if event.source_file == local.name:  # the name the user gave, not the copy's
                    event.source_file = source.name
                yield key, event
        except InputError as exc:
            self.error = exc
        except Exception as exc:  # a bug must cost this input, not the whole run
            diagnostics.damaged(source.name, f"internal error: {exc!r}")
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


def _fetched(source: InputFile, folder: str) -> InputFile:
    """The input at a URL, copied into ``folder``."""
    import fsspec

    local = os.path.join(folder, os.path.basename(source.path.rstrip("/")) or "input")
    try:
        filesystem, path = fsspec.core.url_to_fs(source.path)
        filesystem.get_file(path, local)
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(f"{source.name}: cannot fetch: {exc}") from None
    return InputFile(local, source.member, source.password)


def expanded(files: list[tuple[InputFile, bool]]) -> list[tuple[InputFile, bool]]:
    """The inputs, a URL naming a directory replaced by every file below it (in order)."""
    import fsspec

    out: list[tuple[InputFile, bool]] = []
    for source, explicit in files:
        if "://" not in source.path:
            out.append((source, explicit))
            continue
        try:
            filesystem, path = fsspec.core.url_to_fs(source.path)
            if not filesystem.isdir(path):
                out.append((source, explicit))
                continue
            found = sorted(filesystem.find(path))
        except (OSError, ValueError, ImportError) as exc:
            raise InputError(f"{source.path}: cannot list: {exc}") from None
        out.extend((InputFile(filesystem.unstrip_protocol(name)), False) for name in found)
    return out


class DaskEngine:
    """Reads the inputs with a Dask cluster (``pipeline.Engine``): at ``scheduler``, or a local
    one of ``workers`` worker processes, started on first use and closed by ``close``. With a
    ``writer``, the workers write the events (their runs count them in ``written``); else the
    events come back."""

    def __init__(
        self, scheduler: str | None, workers: int, writer: PartWriter | None = None
    ) -> None:
        self.writer = writer
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ClusterError(
                "the Dask engine needs dask.distributed and fsspec: pip install 'smbwatch[cluster]'"
            ) from None
        self.cluster = None
        try:
            if scheduler is None:
                self.cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
                )
                self.client = Client(self.cluster)
            else:
                self.client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            self.close()
            raise ClusterError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None

    def __call__(
        self, files: list[tuple[InputFile, bool]], input_format: str | None, options: Options
    ) -> Iterator[InputRun]:
        """Every input as a task (a large capture as one task per share), submitted at once;
        the runs in input order."""
        count = max(1, len(self.client.scheduler_info().get("workers", {})))
        submitted = []
        for number, (source, explicit) in enumerate(expanded(files)):
            split = 1 if "://" in source.path else shares(source, input_format, count)
            tasks = [None] if split == 1 else [(index, split) for index in range(split)]
            futures = [
                self._submit(source, input_format, options, share, f"{number}-{index}")
                for index, share in enumerate(tasks)
            ]
            submitted.append((source, explicit, futures))
        for source, explicit, futures in submitted:
            run = InputRun(source, explicit)
            run.events = _received(futures, run) if self.writer is None else _written(futures, run)
            yield run
            for _ in run.events:  # what the reader left unread
                pass

    def _submit(
        self,
        source: InputFile,
        input_format: str | None,
        options: Options,
        share: Share | None,
        part: str,
    ) -> Any:
        """The task of an input or of one share of it (``part`` names it among the run's)."""
        if self.writer is None:
            return self.client.submit(read_task, source, input_format, options, share, pure=False)
        return self.client.submit(
            write_task, source, input_format, options, share, self.writer, part, pure=False
        )

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.cluster is not None:
            self.cluster.close()


def _received(futures: list[Any], run: InputRun) -> Iterator[SmbEvent]:
    """The events of the input's tasks (its shares merged by key), their diagnostics taken in."""
    results: list[Result] = _results(futures, run)
    if len(futures) == 1:
        if not results:
            return
        yield from from_stored(results[0][0], results[0][1])
        return
    streams = [zip(r[2], from_stored(r[0], r[1]), strict=True) for r in results]
    yield from merged(streams)


def _written(futures: list[Any], run: InputRun) -> Iterator[SmbEvent]:
    """No events: the input's tasks wrote them; how many is counted in the run."""
    written: list[Written] = _results(futures, run)
    run.written = sum(result[0] for result in written)
    yield from ()


def _results(futures: list[Any], run: InputRun) -> list[Any]:
    """What the input's tasks returned, in order, their diagnostics and error (the last two
    of each result) taken into the run; a task the cluster gave up on costs its part."""
    results = []
    for future in futures:
        try:
            result = future.result()
        except Exception as exc:  # the cluster gave up on the task (its workers died)
            run.diagnostics.damaged(run.path, f"its cluster task failed: {exc!r}")
            continue
        finally:
            future.release()
        results.append(result)
        run.diagnostics.merge(result[-2])
        if run.error is None:
            run.error = result[-1]
    return results
