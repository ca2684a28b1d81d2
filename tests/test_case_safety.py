"""The case holds up: an ingest killed at any moment (SIGKILL, the whole process group) leaves the
case as it was before that input; two ingests at once do not corrupt it (the second waits);
the timeline of a 1.1 GB capture stays under a memory bound; and the report of a big case (that
capture and a Security log of 500,000 records) is made within the case's database memory.

The input big enough to be killed mid-way is the benchmark capture (``benchmarks/make_capture.py``
builds it with the Samba lab when it is not there yet: about 75 s)."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import shared_dir

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[1]
PSEXEC = sorted((shared_dir() / "data" / "otrf").glob("empire_psexec*"))
EXAMPLE = REPO / "examples" / "lateral-movement.pcap"
BENCH = Path(os.environ.get("SMBWATCH_BENCH_CAPTURE", "/tmp/bench/bench.pcap"))
MEMORY_BOUND_MB = 600  # the README's figure for the timeline of the 1.1 GB capture
# Moments of an ingest of the 1.1 GB capture, as parts of how long a whole one takes in the same
# test, while it decodes and writes: its input's commit comes after the decoding, at about 80%
# of the whole (3.8 of 4.7 s on the 2-core VM, quiet). Fixed seconds were wrong as it sped up.
KILL_AT = (0.1, 0.4, 0.7)


@pytest.fixture(scope="module")
def big_capture() -> Path:
    if not BENCH.exists():
        BENCH.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / "make_capture.py"), "--size-mb", "1024"]
            + ["--out", str(BENCH)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    return BENCH


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "smbwatch.cli", *map(str, args)]


def smbwatch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=900)


def state(case: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """What a fresh reader sees: the inputs, the per-input counts, the hosts."""
    out = []
    for sql in (
        "SELECT input_id, path, sha256, events, duplicates FROM inputs ORDER BY input_id",
        "SELECT input_id, count(*) AS n, count(DISTINCT message_key) AS keys FROM sightings "
        "GROUP BY ALL ORDER BY input_id",
        "SELECT host, addresses, aliases FROM hosts ORDER BY host",
    ):
        done = smbwatch("query", "--case", case, sql, "-f", "jsonl")
        assert done.returncode == 0, done.stderr
        out.append([json.loads(line) for line in done.stdout.splitlines()])
    return out[0], out[1], out[2]


def test_an_ingest_killed_at_any_moment_leaves_the_case_as_it_was(
    big_capture: Path, tmp_path: Path
) -> None:
    case = tmp_path / "case"
    assert smbwatch("ingest", "-q", "--case", case, *PSEXEC).returncode == 0
    before = state(case)
    kept = tmp_path / "kept"
    shutil.copytree(case, kept)
    whole = min(timed_ingest(big_capture, tmp_path / f"timed{n}") for n in range(2))
    for part in KILL_AT:
        process = killable_ingest(case, big_capture, whole * part, kept)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        assert state(case) == before, f"killed at about {part:.0%} of a whole ingest"
    again = smbwatch("ingest", "--case", case, *PSEXEC)
    assert again.returncode == 0 and again.stdout.count("already in the case") == len(PSEXEC)
    done = smbwatch("ingest", "-q", "--case", case, big_capture)
    assert done.returncode == 0, done.stderr
    inputs, counts, _ = state(case)
    assert inputs[:3] == before[0] and counts[:3] == before[1]
    assert inputs[3]["path"] == str(big_capture) and inputs[3]["events"] > 100_000
    assert counts[3] == {"input_id": 4, "n": inputs[3]["events"], "keys": inputs[3]["events"]}


def timed_ingest(capture: Path, case: Path) -> float:
    """Seconds a whole ingest of ``capture`` into a new case takes."""
    start = time.perf_counter()
    assert smbwatch("ingest", "-q", "--case", case, capture).returncode == 0
    return time.perf_counter() - start


def killable_ingest(case: Path, capture: Path, delay: float, kept: Path) -> subprocess.Popen:
    """An ingest of ``capture`` into ``case`` still running ``delay`` seconds after it began,
    its transaction not yet committing: nothing written to the database file or its log. One
    that got further first (the machine ran faster than when it was timed: a shared VM's runs
    vary by 20%, and the commit comes at about 70% of the whole) is stopped and tried again
    sooner, on the case put back as it was (``kept``)."""
    for _ in range(6):
        before = written(case)
        process = subprocess.Popen(
            command("ingest", "-q", "--case", case, capture),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its hashing helper too: the whole group dies at once
        )
        time.sleep(delay)
        if process.poll() is None and written(case) == before:
            return process
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        shutil.rmtree(case)
        shutil.copytree(kept, case)
        delay *= 0.7
    raise AssertionError("the ingest got to its commit before it could be killed, six times")


def written(case: Path) -> tuple[int, int, bool]:
    """What a commit changes first: the database file's time and size, and its write-ahead
    log's being there."""
    database = case / "case.duckdb"
    found = database.stat()
    return found.st_mtime_ns, found.st_size, database.with_name("case.duckdb.wal").exists()


def held_by_a_writer(case: Path, timeout: float = 120.0) -> None:
    """Return once a writer holds the case's lock (asked without waiting, every 20 ms): a
    fixed wait would be too short on a busy machine and past the end of the ingest on a fast
    one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            descriptor = os.open(case / "lock", os.O_RDONLY)
        except FileNotFoundError:  # the writer has not made the case yet
            time.sleep(0.02)
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        finally:
            os.close(descriptor)  # and with it the shared lock, if it was given
        time.sleep(0.02)
    raise AssertionError(f"no writer took {case}'s lock in {timeout} s")


def test_two_ingests_at_once_take_turns(big_capture: Path, tmp_path: Path) -> None:
    case = tmp_path / "case"
    first = subprocess.Popen(
        command("ingest", "--case", case, big_capture),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    held_by_a_writer(case)  # the first holds the case, decoding
    second = smbwatch("ingest", "--case", case, *PSEXEC)
    reader = smbwatch("query", "--case", case, "SELECT count(*) AS n FROM inputs", "-f", "jsonl")
    out, err = first.communicate(timeout=900)
    assert first.returncode == 0, err
    assert second.returncode == 0, second.stderr
    assert "waiting: another smbwatch is writing" in second.stderr
    assert reader.returncode == 0 and json.loads(reader.stdout)["n"] in (1, 4)
    inputs, counts, _ = state(case)
    assert [Path(i["path"]) for i in inputs] == [big_capture, *PSEXEC]
    assert [c["n"] for c in counts] == [i["events"] for i in inputs]


def test_the_timeline_of_a_large_capture_stays_under_the_memory_bound(
    big_capture: Path, tmp_path: Path
) -> None:
    """Decoded, stored in a temporary case, sorted by the database and written: the largest
    process of the run (smbwatch, or its hashing helper) peaks under the bound."""
    out = tmp_path / "timeline.jsonl"
    process = subprocess.Popen(
        command("timeline", "-q", big_capture, "-f", "jsonl", "-o", out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)  # this run alone (and what it waited for)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    peak_mb = usage.ru_maxrss / 1024
    assert peak_mb < MEMORY_BOUND_MB, f"peak {peak_mb:.0f} MB"
    count, last = 0, ""
    with out.open() as lines:
        for line in lines:
            time_text = json.loads(line)["time"]
            assert time_text >= last[:26]  # all of the capture's times have microseconds
            last = time_text
            count += 1
    assert count > 100_000


def test_the_report_of_a_big_case_is_made_within_the_case_memory(
    big_capture: Path, tmp_path: Path
) -> None:
    """The capture and a Security log of 500,000 records for it (``bench_story``'s: a 4624, 5140
    and 5145 for each session, tree connect and open, and other machines' logons): 625,000
    events, and the shipped example added by a second ingest. With the events' count
    underestimated (the case's correlation worked out again had changed its statistics),
    DuckDB built a join's hash table on the events and the report ran out of the case's
    256 MB. The page's timeline is sampled to its bound, in time order."""
    spec = importlib.util.spec_from_file_location(
        "bench_story", REPO / "benchmarks" / "bench_story.py"
    )
    assert spec is not None and spec.loader is not None
    story = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(story)
    log = tmp_path / "security.json"
    assert story.host_log(big_capture, log, 500_000) == 500_000
    case = tmp_path / "case"
    done = smbwatch("ingest", "-q", "--case", case, big_capture, log)
    assert done.returncode == 0, done.stderr
    done = smbwatch("ingest", "-q", "--case", case, EXAMPLE)  # added later: worked out again
    assert done.returncode == 0, done.stderr
    page = tmp_path / "report.html"
    done = smbwatch("report", "-q", "--case", case, "-o", page)
    assert done.returncode == 0, done.stderr
    data = re.search(r'id="smbwatch-data">(.*?)</script>', page.read_text(), re.S)
    assert data is not None
    timeline = json.loads(data.group(1))["timeline"]
    assert timeline["sampled"] and timeline["total"] > 600_000
    from smbwatch.case.story import TIMELINE_ROWS

    rows = timeline["rows"]
    assert len(rows) == TIMELINE_ROWS
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
