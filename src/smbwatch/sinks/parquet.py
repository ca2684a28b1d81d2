"""Parquet: a dataset of event files partitioned by date (``DIR/date=2020-09-20/...``), with the
event schema's types, which DuckDB, pandas, polars and Spark read as they are.

Each run writes files of its own name (``part-<run>-<n>.parquet``), so runs into one directory
add to the dataset rather than replace it. A cluster's workers write the parts of their tasks
themselves (``ParquetParts``), to a directory they all reach or to an fsspec URL
(``s3://bucket/events/``): the events never travel back to the machine that runs smbwatch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from smbwatch.arrow import EVENT_SCHEMA
from smbwatch.sinks import OutputError

PARTITION: Final = pa.schema([("date", pa.string())])
ROWS_PER_GROUP: Final = 65536


def write_parquet(
    batches: Iterable[pa.RecordBatch], directory: str | Path, run: str | None = None
) -> int:
    """Write event batches (the event schema) under ``directory`` (a path, or an fsspec URL),
    in files named after ``run`` (by default this run: its time and process); the number of
    events. A run that is written again under the same name replaces its files."""
    filesystem, path = _where(str(directory))
    count = [0]
    ds.write_dataset(
        _dated(batches, count),
        path,
        filesystem=filesystem,
        schema=EVENT_SCHEMA.append(pa.field("date", pa.string())),
        format="parquet",
        partitioning=ds.partitioning(PARTITION, flavor="hive"),
        basename_template=f"part-{run or run_name()}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_group=ROWS_PER_GROUP,
        min_rows_per_group=min(ROWS_PER_GROUP, 8192),
    )
    return count[0]


def run_name() -> str:
    """A name for this run's files: its start time and process."""
    return f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"


def _where(directory: str) -> tuple[Any, str]:
    """The file system (None: the local one) and path of ``directory``, made ready to write:
    a local directory created and checked, a URL's handed to fsspec as it is."""
    if "://" in directory:
        try:
            import fsspec
            from pyarrow.fs import FSSpecHandler, PyFileSystem

            filesystem, path = fsspec.core.url_to_fs(directory)
        except (ImportError, ValueError, OSError) as exc:
            raise OutputError(f"{directory}: cannot write there: {exc}") from None
        return PyFileSystem(FSSpecHandler(filesystem)), path
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{directory}: not a directory (parquet writes a dataset into one)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{directory}: not a writable directory")
    return None, directory


class ParquetParts:
    """Where a cluster's tasks write their events (``cluster.PartWriter``): the dataset at
    ``directory``, each task's files named after this run and the task, so that a task Dask
    runs again (its worker died) writes the same files over, never twice."""

    def __init__(self, directory: str) -> None:
        _where(directory)  # a directory that cannot be written is said before any task runs
        self.directory = directory
        self.run = run_name()

    def __call__(self, batches: Iterable[pa.RecordBatch], task: str) -> int:
        return write_parquet(batches, self.directory, f"{self.run}-{task}")


def _dated(batches: Iterable[pa.RecordBatch], count: list[int]) -> Iterator[pa.RecordBatch]:
    """Each batch with the day (UTC) of each event, the partition key."""
    for batch in batches:
        count[0] += batch.num_rows
        day = pc.strftime(batch.column("time"), format="%Y-%m-%d")
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, day], schema=batch.schema.append(pa.field("date", pa.string()))
        )
