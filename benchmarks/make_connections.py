"""Build a capture of very many short SMB connections, for peak memory.

    python benchmarks/make_connections.py --connections 1000000 --seconds 3600 --out PATH

Each connection is a client's SMB2 NEGOTIATE request (a real frame of the corpus, frame 12 of
suricata-verify's smb2-01, its client address and port rewritten), and nothing more: no answer,
no FIN, as a scan or clients that vanish leave them. The connections are spread evenly over
``--seconds`` of capture time: over an hour, idle ones are closed by time (15 minutes); over
a second, only the bound on connections followed at once keeps memory flat. Measure with
``/usr/bin/time -f %M smbwatch events -q --no-hash -f jsonl PATH > /dev/null``.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import shared_dir  # noqa: E402
from oracle import read_pcap_records  # noqa: E402

TEMPLATE = shared_dir() / "data" / "suricata-verify" / "smb2-01" / "smb2-peter.pcap"
PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")
PORTS = 50_000  # client ports per client address


def build(out: Path, connections: int, seconds: int) -> None:
    linktype, records = read_pcap_records(TEMPLATE)
    negotiate = records[11][2]  # the client's SMB2 NEGOTIATE request
    start = 34 + (negotiate[46] >> 4) * 4
    assert negotiate[start + 4 : start + 8] == b"\xfeSMB", "not the NEGOTIATE frame"
    with out.open("wb") as capture:
        capture.write(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, linktype))
        for n in range(connections):
            micros = n * seconds * 1_000_000 // max(connections, 1)
            client = struct.pack("!I", 0x0A000000 + n // PORTS)
            port = struct.pack("!H", 1024 + n % PORTS)
            frame = negotiate[:26] + client + negotiate[30:34] + port + negotiate[36:]
            capture.write(
                RECORD.pack(
                    1_600_000_000 + micros // 1_000_000, micros % 1_000_000, len(frame), len(frame)
                )
            )
            capture.write(frame)
    print(f"{out}: {connections} connections over {seconds} s, {out.stat().st_size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=3600, help="capture time they span")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    build(args.out, args.connections, args.seconds)


if __name__ == "__main__":
    main()
