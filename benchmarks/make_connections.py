"""Build a capture of very many short SMB connections, for peak memory.

    python benchmarks/make_connections.py --connections 1000000 --seconds 3600 --out PATH

Each connection is a client's SMB2 NEGOTIATE request (a real frame of the corpus, frame 12 of
suricata-verify's smb2-01, its client address and port rewritten), and nothing more: no answer,
no FIN, as a scan or clients that vanish leave them. The connections are spread evenly over
``--seconds`` of capture time: over an hour, idle ones are closed by time (15 minutes); over
a second, only the bound on connections followed at once keeps memory flat. Measure with
``/usr/bin/time -f %M smbwatch events -q --no-hash -f jsonl PATH > /dev/null``.

With ``--scan`` each connection is instead a SYN to port 445 answered by a reset, as a scan
of a network leaves them: a connection opened and closed with no SMB byte, no event.
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


def build(out: Path, connections: int, seconds: int, scan: bool = False) -> None:
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
            for packet in _scan(frame, start) if scan else (frame,):
                capture.write(
                    RECORD.pack(
                        1_600_000_000 + micros // 1_000_000,
                        micros % 1_000_000,
                        len(packet),
                        len(packet),
                    )
                )
                capture.write(packet)
    print(f"{out}: {connections} connections over {seconds} s, {out.stat().st_size} bytes")


def _scan(frame: bytes, payload: int) -> tuple[bytes, bytes]:
    """The frame's headers as the client's SYN, and the server's reset (addresses and ports
    swapped) that answers it."""
    syn = bytearray(frame[:payload])
    syn[16:18] = struct.pack("!H", payload - 14)  # the IP total length: headers only
    syn[47] = 0x02  # SYN
    reset = bytearray(syn)
    reset[26:30], reset[30:34] = syn[30:34], syn[26:30]
    reset[34:36], reset[36:38] = syn[36:38], syn[34:36]
    reset[47] = 0x14  # RST, ACK
    for packet in (syn, reset):
        packet[24:26] = b"\0\0"
        words = sum(struct.unpack("!10H", packet[14:34]))
        words = (words & 0xFFFF) + (words >> 16)
        packet[24:26] = struct.pack("!H", ~((words & 0xFFFF) + (words >> 16)) & 0xFFFF)
    return bytes(syn), bytes(reset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=3600, help="capture time they span")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scan", action="store_true", help="a SYN and a reset each, no data")
    args = parser.parse_args()
    build(args.out, args.connections, args.seconds, args.scan)


if __name__ == "__main__":
    main()
