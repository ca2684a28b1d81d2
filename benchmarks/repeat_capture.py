"""Make a long capture out of a shorter one, for memory over time: the records of a classic pcap
file written ``--times`` times, each copy a day after the one before (every timestamp moved by
86,400 s times the copy's index), so the later copies' connections are new ones to the decoder
(their 4-tuples recur a day later, far past the idle close) and the state of the earlier ones
must have been let go.

    python benchmarks/repeat_capture.py /tmp/bench/bench.pcap --out /tmp/bench/bench10.pcap

Ten copies of the 1.1 GB ``make_capture.py`` capture make an 11 GB capture in about a minute,
where the lab would take 12 minutes of two cores. Only classic pcap (what make_capture writes).
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

DAY = 86_400
HEADER = 24
RECORD = 16
CHUNK = 1 << 24


def repeat(source: Path, times: int, out: Path) -> int:
    """Write ``times`` copies of ``source``'s records to ``out``; the bytes written."""
    data = source.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        raise SystemExit(f"{source}: not a classic pcap file")
    record = struct.Struct(order + "IIII")
    with out.open("wb") as sink:
        sink.write(data[:HEADER])
        for copy in range(times):
            shift = copy * DAY
            pending: list[bytes] = []
            size = 0
            pos = HEADER
            while pos + RECORD <= len(data):
                seconds, fraction, caplen, length = record.unpack_from(data, pos)
                end = pos + RECORD + caplen
                pending.append(record.pack(seconds + shift, fraction, caplen, length))
                pending.append(data[pos + RECORD : end])
                size += RECORD + caplen
                pos = end
                if size >= CHUNK:
                    sink.write(b"".join(pending))
                    pending, size = [], 0
            sink.write(b"".join(pending))
    return out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--times", type=int, default=10, help="copies (10)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    written = repeat(args.source, args.times, args.out)
    print(f"{args.out}: {written / 1e9:.2f} GB, {args.times} copies of {args.source}")


if __name__ == "__main__":
    main()
