"""Parquet: a dataset of event files partitioned by date (``DIR/date=2020-09-20/...``), with the
event schema's types, which DuckDB, pandas, polars and Spark read as they are.

Each run writes files of its own name (``part-<run>-<n>.parquet``), so runs into one directory
add to the dataset rather than replace it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from smbwatch.arrow import EVENT_SCHEMA
from smbwatch.sinks import OutputError

PARTITION: Final = pa.schema([("date", pa.string())])
ROWS_PER_GROUP: Final = 65536


def write_parquet(batches: Iterable[pa.RecordBatch], directory: str | Path) -> int:
    """Write event batches (the event schema) under ``directory``; the number of events."""
    path = Path(directory)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{directory}: not a directory (parquet writes a dataset into one)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create: {exc.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{directory}: not a writable directory")
    count = [0]
    run = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    ds.write_dataset(
        _dated(batches, count),
        path,
        schema=EVENT_SCHEMA.append(pa.field("date", pa.string())),
        format="parquet",
        partitioning=ds.partitioning(PARTITION, flavor="hive"),
        basename_template=f"part-{run}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_group=ROWS_PER_GROUP,
        min_rows_per_group=min(ROWS_PER_GROUP, 8192),
    )
    return count[0]


def _dated(batches: Iterable[pa.RecordBatch], count: list[int]) -> Iterator[pa.RecordBatch]:
    """Each batch with the day (UTC) of each event, the partition key."""
    for batch in batches:
        count[0] += batch.num_rows
        day = pc.strftime(batch.column("time"), format="%Y-%m-%d")
        yield pa.RecordBatch.from_arrays(
            [*batch.columns, day], schema=batch.schema.append(pa.field("date", pa.string()))
        )
