"""smbwatch against tshark (and the tcpdump and dpkt floors) on the same capture, in one run.

    python benchmarks/bench_capture.py [CAPTURE]      (default: benchmarks/work/bench.pcap,
                                                       made by benchmarks/make_capture.py)

Each tool runs as its own process over the same file, its output thrown away; wall time and peak
memory (max RSS) are measured by the parent with wait4. smbwatch runs twice: with ``--no-hash``
(the like-for-like comparison with tshark, which hashes nothing) and as by default (every file
that crossed the wire hashed with sha256). Printed: MB/s of capture for each, and
smbwatch's throughput as a multiple of tshark's. The file is read once beforehand so every tool
finds it in the page cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TSHARK_FIELDS = [
    "frame.time_epoch", "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "smb2.cmd",
    "smb2.sesid", "smb2.tid", "smb2.fid", "smb2.nt_status", "smb2.filename", "smb2.tree",
    "smb2.acct", "smb2.domain", "smb2.host", "smb2.create.disposition", "smb.access_mask",
    "smb2.write_length", "smb2.read_length", "smb2.file_offset", "smb.cmd", "smb.file",
]  # fmt: skip
DPKT_FLOOR = """
import sys, dpkt
n = 0
with open(sys.argv[1], 'rb') as f:
    for ts, buf in dpkt.pcap.Reader(f):
        eth = dpkt.ethernet.Ethernet(buf)
        ip = eth.data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP):
            if 445 in (ip.data.sport, ip.data.dport):
                n += len(ip.data.data)
print(n)
"""


def run(name: str, command: list[str], size: int) -> tuple[str, float, float, float]:
    """Run one tool to completion; (name, seconds, peak MB, CPU seconds of it and what it
    waited for)."""
    start = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 3):
        raise SystemExit(f"{name} failed: {' '.join(command)}")
    peak_mb = usage.ru_maxrss / 1024
    print(f"{name:<28} {seconds:8.2f} s {size / seconds / 1e6:9.1f} MB/s  peak {peak_mb:7.1f} MB")
    return name, seconds, peak_mb, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", default=str(HERE / "work" / "bench.pcap"))
    parser.add_argument("--skip-tshark", action="store_true", help="tshark takes minutes on 1 GB")
    args = parser.parse_args()
    capture = Path(args.capture)
    if not capture.is_file():
        raise SystemExit(f"{capture}: missing; make it with benchmarks/make_capture.py")
    size = capture.stat().st_size
    with capture.open("rb") as warm:
        while warm.read(1 << 24):
            pass
    smbwatch = [sys.executable, "-m", "smbwatch.cli", "events", str(capture), "-f", "jsonl", "-q"]
    print(f"capture: {capture} ({size / 1e6:.0f} MB)")
    # tshark extracts the facts of each message and hashes nothing: --no-hash is like for like.
    results = [run("smbwatch events --no-hash", [*smbwatch, "--no-hash"], size)]
    run("smbwatch events (files hashed)", smbwatch, size)
    if shutil.which("tcpdump"):
        tcpdump = ["tcpdump", "-r", str(capture), "-w", os.devnull, "tcp port 445 or tcp port 139"]
        run("tcpdump filter (floor)", tcpdump, size)
    run("dpkt parse loop (floor)", [sys.executable, "-c", DPKT_FLOOR, str(capture)], size)
    if not args.skip_tshark:
        fields = [arg for field in TSHARK_FIELDS for arg in ("-e", field)]
        tshark = ["tshark", "-n", "-r", str(capture), "-Y", "smb2 or smb", "-T", "fields", *fields]
        results.append(run("tshark -T fields", tshark, size))
        ratio = results[1][1] / results[0][1]
        print(f"smbwatch --no-hash throughput = {ratio:.1f} x tshark's")


if __name__ == "__main__":
    main()
