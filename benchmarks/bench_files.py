"""What the complete decoder costs: SMB2 alone, then SMB1 and DCE/RPC too, then file hashing.

    python benchmarks/make_capture.py --size-mb 550 --out /tmp/bench/half.pcap
    python benchmarks/make_capture.py --size-mb 1024 --out /tmp/bench/bench.pcap
    python benchmarks/bench_files.py /tmp/bench/bench.pcap --double ...   (a capture twice the size)

Configurations, each its own process over the same file (one input), in turns, ``--repeat``
times: the SMB2-only decoder (no SMB1 decoder, no hashing: the foundation's decoder, run through
``pipeline.capture_events`` with only the SMB2 decoder), ``events --no-hash`` (SMB1 and DCE/RPC
too), ``events`` (the complete decoder: every completely seen file hashed with the default
digest, sha256), and ``events --extract-files``. The best wall time of each is kept (the machine
may be shared) with CPU time and peak memory (max RSS, from wait4) beside it; on a shared
machine whose speed drifts between runs, the median ratio of runs one after the other is shown
too. Printed:
MB/s of capture for each, the complete decoder's throughput as a share of the SMB2-only one and
of ``--no-hash`` (target: at least 0.8), how much file data was hashed, and the peak memory of
hashing on a capture twice the size (it should not grow with the input).

Hashing is CPU no decoder avoids, so two bounds are printed beside the measured share, from the
complete run's CPU split between the decoder process and the hashing process and from what
hashlib alone takes for the same amount of data: with cores to spare the decoder process alone
bounds the run, and on this machine's cores no complete decoder can do better than the SMB2-only
decoder's CPU plus hashlib's, shared over the cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from smbwatch.options import DEFAULT_HASHES

SMB2_ONLY = """
import sys
from functools import partial
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.options import Options
from smbwatch.pipeline import capture_events
from smbwatch.filedata.transfers import Transfers
from smbwatch.smb.smb2 import Smb2Decoder
from smbwatch.sinks.jsonl import write_jsonl
diagnostics = Diagnostics()
transfers = Transfers(Options(hashes=()), diagnostics)
decoders = {0xFE: partial(Smb2Decoder, files=transfers)}
events = capture_events(sys.argv[1], diagnostics, decoders=decoders)
with open(sys.argv[2], "w", encoding="utf-8") as out:
    write_jsonl(map(SmbEvent.to_dict, events), out)
"""

# The command line, and then the decoder process's own CPU time apart from the hashing
# process's, written to the file named first: they run side by side, so their sum says how
# many cores the complete decoder needs, and the decoder's share how fast it goes with enough.
SPLIT_CPU = """
import json, resource, sys
from smbwatch import cli
code = cli.main(sys.argv[2:])
own = resource.getrusage(resource.RUSAGE_SELF)
child = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump([own.ru_utime + own.ru_stime, child.ru_utime + child.ru_stime], out)
sys.exit(code)
"""


def events_args(capture: Path, out: Path, extra: list[str]) -> list[str]:
    """The command line's arguments for one configuration."""
    return ["events", str(capture), "-f", "jsonl", "-q", "-j", "1", "-o", str(out), *extra]


def events_command(capture: Path, out: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "smbwatch.cli", *events_args(capture, out, extra)]


def hashing_alone(size: int) -> float:
    """CPU seconds hashlib takes for the default digests (``options.DEFAULT_HASHES``) of
    ``size`` bytes, in 64 KiB pieces: the least any hashing of that much file data costs on
    this machine."""
    piece = memoryview(os.urandom(64 << 10))
    digests = [hashlib.new(name) for name in DEFAULT_HASHES]
    start = time.process_time()
    for _ in range(size // len(piece)):
        for digest in digests:
            digest.update(piece)
    return time.process_time() - start


def run(command: list[str]) -> tuple[float, float, float]:
    """One run; (wall seconds, CPU seconds, peak MB)."""
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
    parser.add_argument(
        "--no-extract", action="store_true", help="leave out --extract-files (the slowest)"
    )
    args = parser.parse_args()
    size = args.capture.stat().st_size
    work = Path(tempfile.mkdtemp(prefix="bench-files-"))
    try:
        out = work / "out.jsonl"
        smb2, plain, hashing = "SMB2 only", "--no-hash", "complete (hashing)"
        configs = {
            smb2: [sys.executable, "-c", SMB2_ONLY, str(args.capture), str(out)],
            plain: events_command(args.capture, out, ["--no-hash"]),
            hashing: [
                sys.executable,
                "-c",
                SPLIT_CPU,
                str(work / "cpu.json"),
                *events_args(args.capture, out, []),
            ],
            "complete + --extract-files": events_command(
                args.capture, out, ["--extract-files", str(work / "files")]
            ),
        }
        if args.no_extract:
            del configs["complete + --extract-files"]
        best: dict[str, tuple[float, float, float]] = {}
        paired: dict[str, list[float]] = {smb2: [], plain: []}  # base wall / hashing wall
        for _ in range(args.repeat):
            walls: dict[str, float] = {}
            for name, command in configs.items():
                shutil.rmtree(work / "files", ignore_errors=True)
                result = run(command)
                walls[name] = result[0]
                if name not in best or result[0] < best[name][0]:
                    best[name] = result
                if name == hashing:
                    files, data = hashed_bytes(out)
                    if best[name] is result:  # the best run so far: its CPU split is kept
                        split = (work / "cpu.json").read_text(encoding="utf-8")
                        decoder_cpu, child_cpu = json.loads(split)
            for base in paired:
                paired[base].append(walls[base] / walls[hashing])
        print(f"capture: {args.capture} ({size / 1e6:.0f} MB); {args.repeat} runs each, best")
        for name, (wall, cpu, peak) in best.items():
            print(
                f"{name:<28} {wall:7.2f} s {size / wall / 1e6:7.1f} MB/s"
                f"  cpu {cpu:6.2f} s  peak {peak:6.1f} MB"
            )
        print(f"file data hashed: {files} files, {data / 1e6:.0f} MB")
        for base in paired:
            ratio = best[base][0] / best[hashing][0]
            print(
                f"the complete decoder keeps {ratio:.2f} of the {base} throughput (wall, best;"
                f" {statistics.median(paired[base]):.2f} median of paired runs)"
            )
        cores = len(os.sched_getaffinity(0))
        alone = hashing_alone(data)
        base_cpu = best[smb2][1]
        floor = max(base_cpu, (base_cpu + alone) / cores)
        print(
            f"complete, best run: decoder process {decoder_cpu:.2f} s CPU, hashing process"
            f" {child_cpu:.2f} s CPU; hashlib alone takes {alone:.2f} s CPU for {data / 1e6:.0f}"
            f" MB with {', '.join(DEFAULT_HASHES)}"
        )
        print(
            f"with cores to spare for hashing the decoder process bounds the run: it would keep"
            f" {base_cpu / decoder_cpu:.2f} of the SMB2 only throughput (CPU of SMB2 only /"
            f" decoder process)"
        )
        print(
            f"on this machine's {cores} cores no complete decoder can keep more than"
            f" {base_cpu / floor:.2f} (SMB2 only CPU plus hashlib alone, over {cores} cores)"
        )
        if args.double:
            double = args.double.stat().st_size
            _, _, peak = run(events_command(args.double, work / "double.jsonl", []))
            print(
                f"peak memory hashing: {best[hashing][2]:.1f} MB on {size / 1e6:.0f} MB, "
                f"{peak:.1f} MB on {double / 1e6:.0f} MB (x{double / size:.1f} input)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
