"""The Dask engine: inputs read as tasks of a real ``distributed.LocalCluster`` of two worker
processes (``--scheduler``, as an existing cluster is named) or of one smbwatch starts itself
(``--engine dask``), written as the Parquet dataset a local run writes: the same events. A
large capture goes as one task per share of its connections; a ``file://`` URL is fetched by
the worker as any fsspec URL (``s3://...``) would be."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest
from distributed import LocalCluster
from hostile_support import DATA, smbwatch
from scale_support import large_capture

from smbwatch.pipeline import SPLIT_AT

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
