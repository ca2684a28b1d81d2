"""What hashing transferred files costs: ``smbwatch events`` with and without ``--no-hash``.

    python benchmarks/make_capture.py --size-mb 200 --out /tmp/bench/smb-200.pcap
    python benchmarks/make_capture.py --size-mb 400 --out /tmp/bench/smb-400.pcap
    python benchmarks/bench_files.py /tmp/bench/smb-200.pcap --double /tmp/bench/smb-400.pcap

Each configuration runs as its own process (one input, ``-j 1``) over the same file, in turns,
``--repeat`` times; the best wall time of each is kept (the machine may be shared) and CPU time
and peak memory (max RSS, from wait4) are shown beside it. On a shared machine whose speed
drifts between runs, the median ratio of each no-hash run to the hashing run right after it is
shown too. Printed: MB/s of capture with
``--no-hash``, with hashing (the default), with hashing and ``--extract-files``, the ratio of
hashing to no-hash throughput (target: at least 0.8), how much file data was hashed, and the
peak memory of hashing on a capture twice the size (it should not grow with the input).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(capture: Path, extra: list[str], out: Path) -> tuple[float, float, float]:
    """One ``smbwatch events`` run; (wall seconds, CPU seconds, peak MB)."""
    command = [sys.executable, "-m", "smbwatch.cli", "events", str(capture)]
    command += ["-f", "jsonl", "-q", "-j", "1", "-o", str(out), *extra]
    start = time.perf_counter()
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        raise SystemExit(f"failed: {' '.join(command)}: {process.stderr.read().decode()}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def hashed_bytes(out: Path) -> tuple[int, int]:
    """(files hashed, bytes of file data hashed) in a jsonl output."""
    files = size = 0
    with out.open(encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            if "sha256" in event:
                files += 1
                size += event["file_size"]
    return files, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path)
    parser.add_argument("--double", type=Path, help="a capture about twice the size")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    size = args.capture.stat().st_size
    work = Path(tempfile.mkdtemp(prefix="bench-files-"))
    try:
        configs = {
            "--no-hash": ["--no-hash"],
            "hashing (default)": [],
            "hashing + --extract-files": ["--extract-files", str(work / "files")],
        }
        best: dict[str, tuple[float, float, float]] = {}
        paired: list[float] = []  # no-hash wall / hashing wall, of runs one after the other
        for _ in range(args.repeat):
            walls: dict[str, float] = {}
            for name, extra in configs.items():
                shutil.rmtree(work / "files", ignore_errors=True)
                result = run(args.capture, extra, work / "out.jsonl")
                walls[name] = result[0]
                if name not in best or result[0] < best[name][0]:
                    best[name] = result
            paired.append(walls["--no-hash"] / walls["hashing (default)"])
        files, data = hashed_bytes(work / "out.jsonl")
        print(f"capture: {args.capture} ({size / 1e6:.0f} MB); {args.repeat} runs each, best")
        for name, (wall, cpu, peak) in best.items():
            print(
                f"{name:<28} {wall:7.2f} s {size / wall / 1e6:7.1f} MB/s"
                f"  cpu {cpu:6.2f} s  peak {peak:6.1f} MB"
            )
        print(f"file data hashed: {files} files, {data / 1e6:.0f} MB")
        plain, hashing = best["--no-hash"], best["hashing (default)"]
        print(f"hashing keeps {plain[0] / hashing[0]:.2f} of the no-hash throughput (wall, best)")
        print(f"              {statistics.median(paired):.2f} (wall, median of the paired runs)")
        print(f"              {plain[1] / hashing[1]:.2f} (cpu)")
        if args.double:
            double = args.double.stat().st_size
            _, _, peak = run(args.double, [], work / "double.jsonl")
            print(
                f"peak memory hashing: {hashing[2]:.1f} MB on {size / 1e6:.0f} MB, "
                f"{peak:.1f} MB on {double / 1e6:.0f} MB (x{double / size:.1f} input)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
