"""A capture of the Samba lab read in shares by several workers (``-j N`` on a large capture)
gives what one reader of the whole capture gives: sessions in every dialect, uploads and
downloads (hashed), listings, each session a connection of its own."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from lab import DIALECTS, SambaLab, pe_bytes

from smbwatch.containers import InputFile
from smbwatch.diagnostics import Diagnostics
from smbwatch.options import Options
from smbwatch.parallel import Work, parallel_inputs
from smbwatch.pipeline import READERS, capture_events

pytestmark = pytest.mark.lab

SIZE = 1 << 20
ROUNDS = 3


def test_a_lab_capture_read_in_shares_is_what_one_reader_gives(tmp_path: Path) -> None:
    pcap = tmp_path / "sessions.pcap"
    with SambaLab() as lab, lab.capture(pcap):
        for round_number in range(ROUNDS):
            for dialect in DIALECTS:
                name = f"{dialect}-{round_number}.exe"
                data = pe_bytes(name, 65536) + random.Random(name).randbytes(SIZE - 65536)
                (lab.client_dir / name).write_bytes(data)
                commands = [f"put {name}", "ls", f"get {name} back-{name}", f"del {name}"]
                lab.smbclient("data", commands, protocol=dialect)
    whole_diagnostics = Diagnostics()
    whole = [json.dumps(e.to_dict()) for e in capture_events(str(pcap), whole_diagnostics)]
    for count in (2, 3):
        work = [Work(InputFile(str(pcap)), True, count)]
        for run in parallel_inputs(READERS, work, None, count, Options()):
            split = [json.dumps(e.to_dict()) for e in run.events]  # read before the next
            assert sorted(split) == sorted(whole)
            assert split == whole
            assert run.diagnostics.counts == whole_diagnostics.counts
    conns = {json.loads(line).get("conn_id") for line in whole}
    assert len(conns) >= ROUNDS * len(DIALECTS)
    hashed = [line for line in whole if '"sha256"' in line]
    assert len(hashed) >= 2 * ROUNDS * len(DIALECTS)
