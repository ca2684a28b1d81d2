"""Test helper: run the installed command line on mutated real inputs, and measure its memory.

Every hostile-input test asserts the same things of a run: no traceback, the documented exit
code, the warning that says what was lost, and the events that survive. ``peak_rss`` runs the
command line in a process of its own and reports the largest resident size it (or its hashing
child) reached, from ``resource`` (the kernel's own count).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import shared_dir

from smbwatch.capture.streams import native_path
from smbwatch.diagnostics import Diagnostics, InputError
from smbwatch.options import Options
from smbwatch.pipeline import input_events

DATA = shared_dir() / "data"
NXLOG = DATA / "host" / "empire_smbexec_dcerpc_smb_svcctl_2020-09-20025716.json.gz"
EVTX = DATA / "host" / "ATTACK-SAMPLES_LM_5145_Remote_FileCopy.evtx"
SMB2_CAPTURE = DATA / "suricata-verify" / "smb2-01" / "smb2-peter.pcap"
PCAPNG = DATA / "otrf" / "schtask_create_2020-12-1907003032.pcapng"
RPC_OVER_TCP = next((DATA / "suricata-verify" / "dcerpc-dce-iface-01").glob("*.pcap"))
MIB = 1 << 20


@dataclass
class Run:
    """One run of the command line: its exit code, events (JSON lines) and stderr."""

    code: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines()]

    def clean(self, code: int) -> Run:
        """Assert the run ended with ``code`` and printed no traceback."""
        assert "Traceback" not in self.stderr, self.stderr
        assert self.code == code, (self.code, self.stderr)
        return self

    def warned(self, kind: str) -> int:
        """How many warnings of ``kind`` the summary counts (0 when none)."""
        for line in self.stderr.splitlines():
            if line.startswith("smbwatch: warning: ") and f" x {kind}" in line:
                return int(line.split()[2])
        return 0


def smbwatch(*args: str | Path, timeout: int = 300) -> Run:
    command = [sys.executable, "-m", "smbwatch.cli", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    return Run(done.returncode, done.stdout, done.stderr)


_PEAK = """
import resource, sys
from smbwatch.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    own = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(f"peak_kib={peak}", file=sys.stderr)
sys.exit(code)
"""


def peak_rss(*args: str | Path, timeout: int = 600) -> tuple[Run, int]:
    """Run the command line in a process of its own; the run and its peak resident bytes."""
    command = [sys.executable, "-c", _PEAK, *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    lines = done.stderr.splitlines()
    peak = next(int(line.split("=")[1]) for line in lines if line.startswith("peak_kib="))
    stderr = "\n".join(line for line in lines if not line.startswith("peak_kib="))
    return Run(done.returncode, done.stdout, stderr), peak * 1024


def nxlog_lines(*codes: int) -> list[dict]:
    """The real NXLog records of the shared corpus with these event ids, parsed."""
    wanted = {str(code) for code in codes}
    with gzip.open(NXLOG, "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if '"EventID":' in line]
    return [record for record in records if str(record["EventID"]) in wanted]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# What one run of an input says: its events (as JSON) and its warnings (counts, kept examples,
# damaged inputs).
Said = tuple[list[str], dict[str, int], dict[str, list[str]], list[str]]


def read_once(path: Path, options: Options, pure: bool) -> Said:
    """The events and warnings of one input, with the native capture path or the Python one."""
    before = os.environ.pop("SMBWATCH_PURE_PYTHON", None)
    if pure:
        os.environ["SMBWATCH_PURE_PYTHON"] = "1"
    diagnostics = Diagnostics()
    try:
        events = [
            json.dumps(e.to_dict()) for e in input_events(str(path), diagnostics, None, options)
        ]
    except InputError as error:
        events = [f"input error: {error}"]
    finally:
        os.environ.pop("SMBWATCH_PURE_PYTHON", None)
        if before is not None:
            os.environ["SMBWATCH_PURE_PYTHON"] = before
    counts = dict(diagnostics.counts)
    return events, counts, dict(diagnostics.examples), list(diagnostics.damaged_inputs)


def both_paths(path: Path, options: Options | None = None) -> Said:
    """What the input says, checked to be the same to the byte on the native capture path and
    on the Python one (which the native path must exist to be compared with)."""
    assert native_path(), "installed without the native capture path (capture/native.pyx)"
    options = options or Options(hashes=())
    native = read_once(path, options, pure=False)
    pure = read_once(path, options, pure=True)
    assert native == pure
    return native
