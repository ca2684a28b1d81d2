"""``-j``: the default number of workers against one process, on many small inputs and on one
large capture, with tshark as the peer on the capture; best of ``--runs``, ratios printed.

    python benchmarks/bench_parallel.py [--capture /tmp/bench/bench.pcap] [--runs 3]
        [--work DIR] [--skip-tshark]

1. Many inputs: the 593-file stand-in for the hayabusa EVTX corpus (``bench_case.corpus``: the
   7 shared EVTX files and 586 NXLog logs made of the shared logs' records) through
   ``smbwatch detect`` with the 22 rules of ``../shared/sigma/windows-security``, as a user runs
   it, and through ``smbwatch events``: ``-j 1`` against the default ``-j`` (one worker per
   core, a pool of long-lived workers). The issue's aim: the default at least 1.5 times faster.
2. One large capture (made by ``benchmarks/make_capture.py``): ``smbwatch events`` with ``-j 1``
   and ``-j 2``, hashing (sha256, the default) and with ``--no-hash`` (``--no-hash``: the
   capture read by both workers, each decoding its share of the connections; hashing, each
   share would keep two cores busy, so two workers read it whole: ``pipeline.local_shares``),
   and tshark extracting the SMB fields (``bench_capture.TSHARK_FIELDS``).

Each run is a process of its own, timed by wait4 (wall time, CPU time of it and its children,
peak memory); the runs of a comparison alternate so that a shared machine's drift touches both.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_capture import TSHARK_FIELDS  # noqa: E402
from bench_case import corpus  # noqa: E402
from bench_evtx import shared_dir  # noqa: E402

RULES = shared_dir() / "sigma" / "windows-security"
SMBWATCH = [sys.executable, "-m", "smbwatch.cli"]
EXPECTED_CODES = (0, 1, 3)  # done; alerts found (detect); a damaged input


def timed(name: str, command: list[str], size: int) -> tuple[str, float, float, float]:
    """Run one command to completion: (name, wall seconds, peak MB, CPU seconds of it and of
    the processes it waited for)."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in EXPECTED_CODES:
        raise SystemExit(f"{name} failed ({os.waitstatus_to_exitcode(status)})")
    peak, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    print(f"{name:<34} {seconds:7.2f} s  cpu {cpu:6.2f} s  {size / seconds / 1e6:7.1f} MB/s")
    return name, seconds, peak, cpu


def best_of(runs: int, commands: dict[str, list[str]], size: int) -> dict[str, float]:
    """The best wall time of each command, the commands taking turns ``runs`` times."""
    best: dict[str, float] = {}
    for _ in range(runs):
        for name, command in commands.items():
            _, seconds, _, _ = timed(name, command, size)
            best[name] = min(seconds, best.get(name, seconds))
    return best


def many_inputs(work: Path, runs: int) -> None:
    files = [str(path) for path in corpus(work)]
    size = sum(os.path.getsize(path) for path in files)
    print(f"corpus: {len(files)} files, {size / 1e6:.1f} MB; rules: {RULES}")
    for verb, extra in (("detect", ["--rules", str(RULES)]), ("events", [])):
        base = [*SMBWATCH, verb, "-q", "-f", "jsonl", *extra, *files]
        best = best_of(
            runs,
            {f"{verb} -j 1": [*base, "-j", "1"], f"{verb} default -j ({os.cpu_count()})": base},
            size,
        )
        one, default = best.values()
        print(f"{verb}: default -j is {one / default:.2f} x as fast as -j 1 (best of {runs})")


def one_capture(capture: Path, runs: int, skip_tshark: bool) -> None:
    size = capture.stat().st_size
    with capture.open("rb") as warm:
        while warm.read(1 << 24):
            pass
    print(f"capture: {capture} ({size / 1e6:.0f} MB)")
    for options in ([], ["--no-hash"]):
        base = [*SMBWATCH, "events", "-q", "-f", "jsonl", *options, str(capture)]
        label = " ".join(options) or "(sha256)"
        commands = {f"events -j 1 {label}": [*base, "-j", "1"]}
        commands[f"events -j 2 {label}"] = [*base, "-j", "2"]
        best = best_of(runs, commands, size)
        one, two = best.values()
        print(f"events {label}: -j 2 is {one / two:.2f} x as fast as -j 1 (best of {runs})")
        if not skip_tshark and not options:
            fields = [arg for field in TSHARK_FIELDS for arg in ("-e", field)]
            tshark = ["tshark", "-n", "-r", str(capture), "-Y", "smb2 or smb", "-T", "fields"]
            _, seconds, _, _ = timed("tshark -T fields", [*tshark, *fields], size)
            print(f"tshark / smbwatch: -j 1 {seconds / one:.1f} x, -j 2 {seconds / two:.1f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", default="/tmp/bench/bench.pcap")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "bench"))
    parser.add_argument("--skip-tshark", action="store_true", help="tshark takes a minute on 1 GB")
    parser.add_argument("--skip-capture", action="store_true")
    args = parser.parse_args()
    many_inputs(Path(args.work), args.runs)
    if not args.skip_capture:
        capture = Path(args.capture)
        if not capture.is_file():
            raise SystemExit(f"{capture}: missing; make it with benchmarks/make_capture.py")
        one_capture(capture, args.runs, args.skip_tshark)


if __name__ == "__main__":
    main()
