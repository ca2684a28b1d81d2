"""smbwatch against the floor, tcpdump's own filter, on the same captures in one run.

    python benchmarks/bench_floor.py SMB_HEAVY.pcap MIXED.pcap [--runs N]

The floor is ``tcpdump -r F -w /dev/null 'tcp port 445'``: reading the file and keeping SMB's
frames, no decoding at all. smbwatch runs ``events --no-hash -f jsonl`` three times: with the
default ``-j`` (every core: a large capture that is mostly SMB split between the workers by
connection, ``pipeline.SPLIT_SMB_SHARE``), with ``-j 1`` (one process, the native capture path,
``capture/native.pyx``, its page work on a thread beside the walk) and ``-j 1`` with
``SMBWATCH_PURE_PYTHON=1`` (the Python path over the same compiled build). Each command runs
``--runs`` times (best time kept: the machine is shared); printed, per capture: seconds, MB/s,
peak memory (max RSS of the largest process, from wait4), and each smbwatch run as a share of
the floor's speed (floor seconds / smbwatch seconds). The
SMB-heavy capture is ``make_capture.py``'s, the mixed one ``make_capture.py --other-percent 90``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

SMBWATCH = ["events", "-q", "--no-hash", "-f", "jsonl"]


def best(command: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    """(best seconds, peak MB) of ``runs`` runs of ``command``, its output thrown away."""
    times, peak = [], 0.0
    for _ in range(runs):
        start = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.DEVNULL, env=env)
            _, status, usage = os.wait4(process.pid, 0)
        times.append(time.perf_counter() - start)
        if os.waitstatus_to_exitcode(status) not in (0, 3):
            raise SystemExit(f"failed: {' '.join(command)}")
        peak = max(peak, usage.ru_maxrss / 1024)
    return min(times), peak


def bench(capture: Path, runs: int, smbwatch: str) -> None:
    size = capture.stat().st_size
    with capture.open("rb") as warm:  # into the page cache, for every tool alike
        while warm.read(1 << 24):
            pass
    env = dict(os.environ)
    env.pop("SMBWATCH_PURE_PYTHON", None)
    pure = dict(env, SMBWATCH_PURE_PYTHON="1")
    tcpdump = shutil.which("tcpdump") or "tcpdump"
    floor = [tcpdump, "-r", str(capture), "-w", os.devnull, "tcp port 445"]
    rows = [
        ("tcpdump 'tcp port 445' (floor)", floor, env),
        (f"smbwatch --no-hash, -j {os.cpu_count()}", [smbwatch, *SMBWATCH, str(capture)], env),
        ("smbwatch --no-hash, -j 1", [smbwatch, *SMBWATCH, "-j", "1", str(capture)], env),
        (
            "smbwatch --no-hash, -j 1, Python path",
            [smbwatch, *SMBWATCH, "-j", "1", str(capture)],
            pure,
        ),
    ]
    print(f"{capture} ({size / 1e6:.0f} MB), best of {runs}")
    floor_seconds = 0.0
    for name, command, environment in rows:
        seconds, peak = best(command, environment, runs)
        floor_seconds = floor_seconds or seconds
        share = floor_seconds / seconds * 100
        print(
            f"  {name:<34} {seconds:7.2f} s {size / seconds / 1e6:8.0f} MB/s"
            f"  peak {peak:6.0f} MB  {share:5.0f}% of the floor"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("captures", type=Path, nargs="+")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--smbwatch", help="the command to run (default: on PATH, else .venv's)")
    args = parser.parse_args()
    smbwatch = (
        args.smbwatch
        or shutil.which("smbwatch")
        or str(Path(__file__).resolve().parents[1] / ".venv/bin/smbwatch")
    )
    for capture in args.captures:
        bench(capture, args.runs, smbwatch)


if __name__ == "__main__":
    main()
