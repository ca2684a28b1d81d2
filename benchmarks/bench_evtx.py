"""EVTX → events throughput: smbwatch against the ``evtx`` library alone and python-evtx.

    PYTHONPATH=src python benchmarks/bench_evtx.py [Security.evtx ...] [--rounds N]

The floor is iterating the same file with ``evtx`` (records rendered as JSON, as smbwatch asks
for them, on one thread as smbwatch does; its XML rendering is shown too): smbwatch cannot be
faster, the question is how much of that rate it keeps. python-evtx, the pure-Python parser, is
timed for a few seconds on the same file. Rates are records per second of CPU time (everything
runs on one thread); the ``evtx`` and smbwatch runs alternate for ``--rounds`` rounds and the
best of each counts, so other processes on a shared machine barely move the ratio.

Without arguments two Security logs are built in the temporary directory from the one chunk of
the shared PsExec lateral-movement log (30 records: 11 share events, 5 network logons, 1 service
install, 11 process creations, 2 privileged-service calls), each ~20 MB:
- "as recorded": that chunk repeated; 57% of its records are events smbwatch reports;
- "share events a minority": the chunk's free space filled with copies of its last two records
  (process creations, which reuse the templates defined earlier in the chunk; record numbers
  renumbered, checksums recomputed): 81 records of which 14% share events, 21% reported.
"""

from __future__ import annotations

import argparse
import os
import re
import struct
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import evtx
import Evtx.Evtx

from smbwatch.diagnostics import Diagnostics
from smbwatch.winlog import read_events

REPO = Path(__file__).resolve().parents[1]
FILE_HEADER_SIZE, CHUNK_SIZE, RECORDS_START = 4096, 65536, 0x200
PYTHON_EVTX_SECONDS = 5.0
_EVENT_ID = re.compile(r'"EventID":(?:\{[^{}]*\{[^{}]*\},"#text":)?"?(\d+)')


def shared_dir() -> Path:
    """The shared corpus, found as the tests find it (tests/conftest.py)."""
    candidates = [os.environ.get("SMBWATCH_SHARED"), REPO.parent / "shared", "/work/shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "data").is_dir():
            return Path(candidate)
    raise SystemExit("the shared corpus (../shared/data) is missing: set SMBWATCH_SHARED")


def diluted(chunk: bytes) -> bytes:
    """The chunk with its free space filled by copies of its last two records, renumbered."""
    data = bytearray(chunk)
    (free,) = struct.unpack_from("<I", data, 0x30)
    starts, offset = [], RECORDS_START
    while offset < free:
        starts.append(offset)
        offset += struct.unpack_from("<I", data, offset + 4)[0]
    fillers = [bytes(data[starts[-2] : starts[-1]]), bytes(data[starts[-1] : free])]
    record_id, last = len(starts), starts[-1]
    while free + len(filler := fillers[record_id % 2]) <= CHUNK_SIZE:
        record_id += 1
        copy = bytearray(filler)
        struct.pack_into("<Q", copy, 8, record_id)
        data[free : free + len(copy)] = copy
        last, free = free, free + len(copy)
    struct.pack_into("<Q", data, 0x10, record_id)  # last record number
    struct.pack_into("<Q", data, 0x20, record_id)  # last record id
    struct.pack_into("<II", data, 0x2C, last, free)  # last record offset, free space offset
    struct.pack_into("<I", data, 0x34, zlib.crc32(data[RECORDS_START:free]))
    struct.pack_into("<I", data, 0x7C, zlib.crc32(data[:0x78] + data[0x80:RECORDS_START]))
    return bytes(data)


def build_corpus(source: Path, dilute: bool, chunks: int, target: Path) -> Path:
    """An EVTX file of ``chunks`` copies of the source's first chunk, with a consistent header."""
    data = source.read_bytes()
    chunk = data[FILE_HEADER_SIZE : FILE_HEADER_SIZE + CHUNK_SIZE]
    if dilute:
        chunk = diluted(chunk)
    header = bytearray(data[:FILE_HEADER_SIZE])
    struct.pack_into("<QQ", header, 8, 0, chunks - 1)  # first and last chunk numbers
    struct.pack_into("<H", header, 42, chunks)  # chunk count
    struct.pack_into("<I", header, 0x7C, zlib.crc32(header[:120]))
    target.write_bytes(bytes(header) + chunk * chunks)
    return target


def timed(run: Callable[[], int]) -> tuple[int, float]:
    start = time.process_time()
    count = run()
    return count, time.process_time() - start


def evtx_json(path: Path) -> int:
    return sum(1 for _ in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json())


def evtx_xml(path: Path) -> int:
    return sum(1 for _ in evtx.PyEvtxParser(str(path), number_of_threads=1).records())


def python_evtx(path: Path) -> int:
    """Records python-evtx renders in PYTHON_EVTX_SECONDS (its rate is what is compared)."""
    deadline, count = time.process_time() + PYTHON_EVTX_SECONDS, 0
    with Evtx.Evtx.Evtx(str(path)) as log:
        for record in log.records():
            record.xml()
            count += 1
            if time.process_time() > deadline:
                break
    return count


def smbwatch_events(path: Path) -> int:
    diagnostics = Diagnostics()
    count = sum(1 for _ in read_events(str(path), diagnostics))
    if diagnostics.counts:
        print("  warnings:", "; ".join(diagnostics.summary_lines()), file=sys.stderr)
    return count


def composition(path: Path) -> str:
    """The event ids of the file's records, most frequent first."""
    ids = Counter(
        int(_EVENT_ID.search(record["data"]).group(1))  # type: ignore[union-attr]
        for record in evtx.PyEvtxParser(str(path), number_of_threads=1).records_json()
    )
    total = sum(ids.values())
    shares = sum(ids[code] for code in (5140, 5145)) / total
    listed = ", ".join(f"{code}: {count}" for code, count in ids.most_common())
    return f"{total} records ({listed}); share events {shares:.0%}"


def bench(path: Path, title: str, rounds: int) -> None:
    runs = {"floor": evtx_json, "xml": evtx_xml, "smbwatch": smbwatch_events}
    best: dict[str, float] = {}
    counts: dict[str, int] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            counts[name], seconds = timed(lambda run=run: run(path))
            best[name] = min(best.get(name, seconds), seconds)
    slow_records, slow_seconds = timed(lambda: python_evtx(path))
    records = counts["floor"]
    print(f"{title}: {path.stat().st_size / 1e6:.0f} MB, {composition(path)}")
    print(f"  smbwatch events: {counts['smbwatch']}")
    floor = records / best["floor"]
    rows = [
        ("evtx records_json (the floor)", floor),
        ("evtx records (XML)", records / best["xml"]),
        ("smbwatch read_events", records / best["smbwatch"]),
        ("python-evtx", slow_records / slow_seconds),
    ]
    for name, rate in rows:
        print(f"  {name:30} {rate:>10,.0f} records/s  {rate / floor:6.1%} of the floor")
    print(f"  smbwatch is {rows[2][1] / rows[3][1]:,.0f}x python-evtx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path, help="EVTX files (default: built corpora)")
    parser.add_argument("--chunks", type=int, default=300, help="chunks in each built corpus")
    parser.add_argument("--rounds", type=int, default=10, help="alternating timed rounds")
    arguments = parser.parse_args()
    for path in arguments.files:
        bench(path, path.name, arguments.rounds)
    if arguments.files:
        return
    host = shared_dir() / "data" / "host"
    source = next(host.glob("*PSexec_remote_execution_admin_share.evtx"))
    with tempfile.TemporaryDirectory(prefix="smbwatch-bench-") as folder:
        for title, dilute in (("as recorded", False), ("share events a minority", True)):
            corpus = build_corpus(source, dilute, arguments.chunks, Path(folder) / "Security.evtx")
            bench(corpus, title, arguments.rounds)


if __name__ == "__main__":
    main()
