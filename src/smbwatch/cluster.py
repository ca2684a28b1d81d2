"""Inputs read as Dask tasks, beyond one machine: on a local cluster (``--engine dask``) or on an
existing one (``--scheduler tcp://HOST:8786``).

The tasks run the very functions the local workers run: ``pipeline.input_events`` for an input,
``pipeline.share_events`` for each share of a large capture (one share per worker of the
cluster, as ``-j`` does on one machine). Each task returns its events as columns
(``events.columns``) with what reading cost (diagnostics, the input's error); this process
takes them back in input order, a capture's shares merged by key (``parallel.merged``), so the
output (a Parquet dataset with ``-f parquet -o DIR``, or any other format) is what a local run
writes. A task that fails for a bug costs its input, as with local workers; a worker that dies is
Dask's to retry elsewhere.

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
from collections.abc import Iterator
from typing import Any

from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.events import SmbEvent, columns, from_stored
from smbwatch.options import Options
from smbwatch.parallel import InputRun, Share, merged
from smbwatch.pipeline import input_events, share_events, shares

# What a task returns: every field's column, how many events, each event's key (a share), the
# diagnostics and the input's error.
Result = tuple[list[list[Any]], int, list[int], Diagnostics, InputError | None]


class ClusterError(InputError):
    """The cluster cannot be had (the extra is missing, the scheduler cannot be reached): a
    user error."""


def read_task(
    source: InputFile, input_format: str | None, options: Options, share: Share | None
) -> Result:
    """One input (``share`` None) or one share of one, read in a worker of the cluster."""
    diagnostics = Diagnostics()
    events: list[SmbEvent] = []
    keys: list[int] = []
    error = None
    folder = tempfile.mkdtemp(prefix="smbwatch-") if "://" in source.path else None
    try:
        local = source if folder is None else _fetched(source, folder)
        if share is None:
            events = list(input_events(local, diagnostics, input_format, options))
        else:
            for key, event in share_events(local, diagnostics, input_format, options, share):
                keys.append(key)
                events.append(event)
        for event in events:  # the name the user gave, not where the worker put the copy
            if event.source_file == local.name:
                event.source_file = source.name
    except InputError as exc:
        error = exc
    except Exception as exc:  # a bug must cost this input, not the whole run
        diagnostics.damaged(source.name, f"internal error: {exc!r}")
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
    return columns(events), len(events), keys, diagnostics, error


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
    one of ``workers`` worker processes, started on first use and closed by ``close``."""

    def __init__(self, scheduler: str | None, workers: int) -> None:
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
        for source, explicit in expanded(files):
            split = 1 if "://" in source.path else shares(source, input_format, count)
            tasks = [None] if split == 1 else [(index, split) for index in range(split)]
            futures = [
                self.client.submit(read_task, source, input_format, options, share, pure=False)
                for share in tasks
            ]
            submitted.append((source, explicit, futures))
        for source, explicit, futures in submitted:
            run = InputRun(source, explicit)
            run.events = _received(futures, run)
            yield run
            for _ in run.events:  # what the reader left unread
                pass

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()
        if self.cluster is not None:
            self.cluster.close()


def _received(futures: list[Any], run: InputRun) -> Iterator[SmbEvent]:
    """The events of the input's tasks (its shares merged by key), their diagnostics taken in."""
    results: list[Result] = []
    for future in futures:
        try:
            result: Result = future.result()
        except Exception as exc:  # the cluster gave up on the task (its workers died)
            run.diagnostics.damaged(run.path, f"its cluster task failed: {exc!r}")
            continue
        finally:
            future.release()
        results.append(result)
        run.diagnostics.merge(result[3])
        if run.error is None:
            run.error = result[4]
    if len(futures) == 1:
        if not results:
            return
        yield from from_stored(results[0][0], results[0][1])
        return
    streams = [zip(r[2], from_stored(r[0], r[1]), strict=True) for r in results]
    yield from merged(streams)
