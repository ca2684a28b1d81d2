"""The Dask engine: inputs read as tasks of a real ``distributed.LocalCluster`` of two worker
processes (``--scheduler``, as an existing cluster is named) or of one smbwatch starts itself
(``--engine dask``), written as the Parquet dataset a local run writes: the same events,
written by the workers, each task its files. A large capture goes as one task per share of its
connections; a ``file://`` URL is fetched by the worker as any fsspec URL (``s3://...``) would
be, and the dataset can be written to one. Other formats come back to smbwatch, in input
order."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from distributed import LocalCluster
from hostile_support import DATA, smbwatch
from scale_support import large_capture

from smbwatch.arrow import event_batches
from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import SPLIT_AT, iter_events
from smbwatch.sinks.parquet import ParquetParts

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cluster") / "large.pcap"
    return large_capture(path, SPLIT_AT + (1 << 20))


def rows(directory: Path) -> list[str]:
    """The dataset's events, each as the repr of its row, sorted (the date partition too)."""
    table = ds.dataset(directory, format="parquet", partitioning="hive").to_table()
    return sorted(map(repr, table.to_pylist()))


def task_of(name: str) -> tuple[str, str]:
    """The input number and share number in a file name a task wrote."""
    found = re.fullmatch(r"part-\d{8}T\d{6}-\d+-(\d+)-(\d+)-\d+\.parquet", name)
    assert found, name
    return found[1], found[2]


def test_a_cluster_writes_the_dataset_a_local_run_writes(
    scheduler: str, large: Path, tmp_path: Path
) -> None:
    inputs = [DATA / "host", DATA / "pcap", large]
    local, remote = tmp_path / "local", tmp_path / "cluster"
    smbwatch("events", *inputs, "-j", "1", "-f", "parquet", "-o", local).clean(3)
    on_cluster = smbwatch(
        "events", *inputs, "--scheduler", scheduler, "-f", "parquet", "-o", remote
    ).clean(3)  # the corpus holds damaged captures: exit 3 both times
    expected = rows(local)
    assert rows(remote) == expected and len(expected) > 20_000
    assert "input_damaged" in on_cluster.stderr
    # each task wrote its own files: part-<run>-<input>-<share>-<n>.parquet
    tasks = {task_of(path.name) for path in remote.rglob("*.parquet")}
    inputs_written = {number for number, _ in tasks}
    assert len(inputs_written) > 10 and (max(inputs_written, key=int), "1") in tasks


def test_other_formats_come_back_in_input_order(
    scheduler: str, large: Path, tmp_path: Path
) -> None:
    inputs = [DATA / "pcap", large]
    local = smbwatch("events", *inputs, "-j", "1", "-f", "jsonl").clean(3)
    remote = smbwatch("events", *inputs, "--scheduler", scheduler, "-f", "jsonl").clean(3)
    assert sorted(remote.stdout.splitlines()) == sorted(local.stdout.splitlines())
    files = [json.loads(line)["source_file"] for line in remote.stdout.splitlines()]
    assert files == [json.loads(line)["source_file"] for line in local.stdout.splitlines()]
    assert len(set(files)) > 2


def test_the_workers_write_the_dataset_to_a_url(scheduler: str, tmp_path: Path) -> None:
    inputs = [DATA / "otrf"]
    local, remote = tmp_path / "local", tmp_path / "cluster"
    smbwatch("events", *inputs, "-j", "1", "-f", "parquet", "-o", local).clean(3)
    url = f"file://{remote}"
    smbwatch("events", *inputs, "--scheduler", scheduler, "-f", "parquet", "-o", url).clean(3)
    assert rows(remote) == rows(local) and rows(local)


def test_a_task_written_again_replaces_its_files(tmp_path: Path) -> None:
    """A task Dask runs again (its worker died after writing) leaves its events once."""
    diagnostics = Diagnostics()
    events = list(iter_events([str(DATA / "otrf")], diagnostics))
    parts = ParquetParts(str(tmp_path / "out"))
    for _ in range(2):
        assert parts(event_batches(events, diagnostics), "0-0") == len(events)
    assert len(rows(tmp_path / "out")) == len(events) > 1000


def test_a_url_is_fetched_by_the_worker_and_keeps_its_name(scheduler: str, tmp_path: Path) -> None:
    folder = DATA / "otrf"
    local, remote = tmp_path / "local", tmp_path / "cluster"
    smbwatch("events", folder, "-j", "1", "-f", "parquet", "-o", local).clean(3)
    url = f"file://{folder}"
    smbwatch("events", url, "--scheduler", scheduler, "-f", "parquet", "-o", remote).clean(3)
    fetched = ds.dataset(remote, format="parquet", partitioning="hive").to_table().to_pylist()
    assert all(row["source_file"].startswith(f"{url}/") for row in fetched)
    for row in fetched:
        row["source_file"] = row["source_file"].removeprefix("file://")
    assert sorted(map(repr, fetched)) == rows(local) and fetched


def test_engine_dask_starts_a_cluster_of_its_own(tmp_path: Path) -> None:
    inputs = [DATA / "host"]
    local, remote = tmp_path / "local", tmp_path / "cluster"
    smbwatch("events", *inputs, "-j", "1", "-f", "parquet", "-o", local).clean(0)
    smbwatch("events", *inputs, "--engine", "dask", "-j", "2", "-f", "parquet", "-o", remote).clean(
        0
    )
    assert rows(remote) == rows(local) and rows(local)


def test_a_scheduler_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    run = smbwatch(
        "events", DATA / "host", "--scheduler", "tcp://127.0.0.1:9", "-o", tmp_path / "x"
    )
    assert run.code == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("smbwatch: error: cannot reach the Dask scheduler")


def test_a_url_without_a_cluster_is_a_user_error() -> None:
    run = smbwatch("events", "s3://bucket/captures/")
    assert run.code == 2 and "--engine dask" in run.stderr and "Traceback" not in run.stderr
