"""Build a large, realistic SMB capture for the benchmark, reproducibly, with the lab.

Real Samba traffic (tests/lab.py) on a 1500-byte-MTU link with offloads off, so frames are at most
1514 bytes as on Ethernet. Every round plays, for each dialect (NT LM 0.12, 2.0.2, 2.1, 3.0, 3.0.2,
3.1.1), one session on ``data`` that makes a directory, uploads many small files, lists them, reads
some back, renames one and deletes the directory tree, and one session that drops an executable on
``ADMIN$``; then DCE/RPC on IPC$ (srvsvc, svcctl), a small encrypted SMB 3.1.1 session, and one
large transfer (write then read) in the next dialect in turn. Rounds repeat until the capture
reaches ``--size-mb``. File contents come from a fixed seed: two runs carry the same bytes
(timestamps, ports and NTLM challenges differ).

    sudo python3 benchmarks/make_capture.py --size-mb 1024 --out PATH

About 75 s per GiB on two cores (the lab uses one). The capture is not committed: it goes to
benchmarks/work/, which git ignores.

``--other-percent P`` makes a mixed capture, as a sensor on a busy link records it: after each
round, other TCP traffic (bulk transfers on port 8080, in connections of 64 KiB to 4 MiB) until
P% of the capture's bytes are not SMB.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from lab import DIALECTS, SambaLab, pe_bytes  # noqa: E402

SMALL_FILES = 80
SMALL_SIZES = (512, 1500, 4096, 9000, 20000, 65536)
LARGE_SIZE = 8 << 20
SEED = 445


def make_client_files(lab: SambaLab) -> None:
    """The files the client uploads: small documents, a large archive, executables."""
    rng = random.Random(SEED)
    for i in range(SMALL_FILES):
        size = SMALL_SIZES[i % len(SMALL_SIZES)] + rng.randrange(512)
        (lab.client_dir / f"doc{i:03}.dat").write_bytes(rng.randbytes(size))
    (lab.client_dir / "archive.bin").write_bytes(rng.randbytes(LARGE_SIZE))
    for dialect in DIALECTS:
        (lab.client_dir / f"svc_{dialect}.exe").write_bytes(pe_bytes(f"svc-{dialect}", 65536))


def play_round(lab: SambaLab, n: int, sessions: Counter[str]) -> None:
    """One round of the mix described in the module docstring."""
    for dialect in DIALECTS:
        folder = f"r{n}_{dialect}"
        lab.smbclient(
            "data",
            [
                "prompt",
                f"mkdir {folder}",
                f"cd {folder}",
                "mput doc*.dat",
                "ls",
                "get doc000.dat back0.dat",
                "get doc007.dat back7.dat",
                "rename doc001.dat renamed.dat",
                "cd ..",
                f"deltree {folder}",
            ],
            protocol=dialect,
        )
        lab.smbclient("ADMIN$", [f"put svc_{dialect}.exe", "ls"], protocol=dialect)
        sessions[dialect] += 2
    lab.rpcclient("netshareenumall")
    lab.net_rpc(["service", "list"])
    lab.smbclient("secret", ["put doc002.dat", "ls"], encrypt=True)
    large = DIALECTS[n % len(DIALECTS)]
    lab.smbclient("data", ["put archive.bin", "get archive.bin archive.back"], protocol=large)
    sessions["SMB3_11"] += 3
    sessions[large] += 1


OTHER_PORT = 8080
# A server that reads and drops what each connection sends; a client that sends the sizes
# given in connections of their own.
SINK = f"""
import socket, threading
server = socket.create_server(("", {OTHER_PORT}))
print("listening", flush=True)
def drain(conn):
    with conn:
        while conn.recv(1 << 16):
            pass
while True:
    threading.Thread(target=drain, args=(server.accept()[0],), daemon=True).start()
"""
SEND = f"""
import socket, sys, time
block = bytes(range(256)) * 256
for size in map(int, sys.argv[2:]):
    with socket.create_connection((sys.argv[1], {OTHER_PORT})) as conn:
        while size > 0:
            conn.sendall(block[: min(size, len(block))])
            size -= len(block)
    time.sleep(0.002)  # paced, so that tcpdump keeps up
"""


def send_other(lab: SambaLab, size: int, rng: random.Random) -> None:
    """About ``size`` bytes of other TCP traffic, in connections of 64 KiB to 4 MiB."""
    sizes = []
    while size > 0:
        sizes.append(min(size, 1 << rng.randrange(16, 23)))
        size -= sizes[-1]
    for start in range(0, len(sizes), 200):
        lab.run(["python3", "-c", SEND, lab.server_ip, *map(str, sizes[start : start + 200])])


def build(out: Path, size_mb: int, other_percent: int = 0) -> None:
    """Record rounds into ``out`` until it holds ``size_mb`` MiB; print what it holds."""
    started = time.monotonic()
    sessions: Counter[str] = Counter()
    rng = random.Random(SEED)
    with SambaLab() as lab, contextlib.ExitStack() as stack:
        make_client_files(lab)
        bpf = "tcp" if other_percent else "tcp port 445 or tcp port 139"
        if other_percent:
            stack.enter_context(lab.serve(["python3", "-c", SINK]))
        with lab.capture(out, bpf=bpf) as capture:
            n = 0
            while out.stat().st_size < size_mb << 20:
                before = out.stat().st_size
                play_round(lab, n, sessions)
                if other_percent:
                    smb = out.stat().st_size - before
                    send_other(lab, smb * other_percent // (100 - other_percent), rng)
                n += 1
    seconds = time.monotonic() - started
    size = out.stat().st_size
    print(f"{out}: {capture.packets} frames, {size} bytes, {n} rounds, {seconds:.0f} s")
    print("sessions: " + ", ".join(f"{d} {sessions[d]}" for d in DIALECTS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200, help="target size in MiB (200)")
    parser.add_argument("--out", type=Path, help="default benchmarks/work/smb-<size>mb.pcap")
    parser.add_argument(
        "--other-percent", type=int, default=0, help="share of other TCP traffic, in %% (0)"
    )
    args = parser.parse_args()
    if not 0 <= args.other_percent < 100:
        parser.error("--other-percent: from 0 to 99")
    out = args.out or REPO / "benchmarks" / "work" / f"smb-{args.size_mb}mb.pcap"
    build(out, args.size_mb, args.other_percent)


if __name__ == "__main__":
    main()
