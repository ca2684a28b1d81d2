"""What ``smbwatch events`` loads to read a capture: nothing that only other inputs or verbs need.

A small capture is read in a few hundredths of a second, so the modules imported before its
first frame are most of the run (CONTRIBUTING.md: "What a capture run imports"). Each run here
is a fresh interpreter that reads the example capture, then lists every module it imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).parent.parent / "examples" / "lateral-movement.pcap"
# What a capture run must not load: the table (rich), the case (DuckDB, Arrow), detection
# (pySigma, YAML), the log readers, worker processes and their messages, the hashing process,
# the file extractor, directories walked, a scheduled task's XML.
NOT_FOR_A_CAPTURE = (
    "rich",
    "duckdb",
    "pyarrow",
    "sigma",
    "yaml",
    "evtx",
    "smbwatch.readback",
    "smbwatch.winlog",
    "smbwatch.winlog.evtx_file",
    "smbwatch.case.store",
    "smbwatch.detect",
    "smbwatch.arrow",
    "smbwatch.cluster",
    "smbwatch.sinks.extract",
    "multiprocessing",
    "subprocess",
    "threading",
    "tempfile",
    "decimal",
    "pickle",
    "pathlib",
    "xml.parsers.expat",
)
LIST_MODULES = """
import json, os, sys
from smbwatch.cli import main
code = main(sys.argv[1:] + ["-o", os.devnull])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _modules_of(*arguments: str) -> set[str]:
    """The modules a fresh interpreter has imported once ``smbwatch`` ran with these arguments."""
    run = subprocess.run(
        [sys.executable, "-c", LIST_MODULES, *arguments],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    result = json.loads(run.stdout)
    assert result["code"] == 0, run.stderr
    return set(result["modules"])


@pytest.mark.parametrize(
    "arguments",
    [
        ("events", "-q", "-j", "1", "--no-hash", "-f", "jsonl"),
        ("events", "-q", "-j", "2", "--no-hash", "-f", "jsonl"),  # one small input: no workers
    ],
)
def test_a_capture_run_loads_nothing_it_does_not_use(arguments: tuple[str, ...]) -> None:
    modules = _modules_of(*arguments, str(EXAMPLE))
    assert "smbwatch.smb.smb2" in modules  # it did decode the capture
    assert "orjson" in modules  # and write its lines
    loaded = sorted(name for name in NOT_FOR_A_CAPTURE if name in modules)
    assert loaded == []


def test_other_inputs_load_their_readers(tmp_path: Path) -> None:
    """What a capture run leaves out is there when an input needs it: smbwatch's own events
    read back, the hashing process of a run that hashes."""
    events = tmp_path / "events.jsonl"
    with events.open("w") as out:
        subprocess.run(
            [sys.executable, "-m", "smbwatch.cli", "events", "-q", "-j", "1", str(EXAMPLE)],
            stdout=out,
            check=True,
        )
    assert "smbwatch.readback" in _modules_of("events", "-q", "-j", "1", str(events))
    assert "subprocess" in _modules_of("events", "-q", "-j", "1", str(EXAMPLE))


ARROW_POOL = """
import os, sys
from smbwatch.cli import main
main(sys.argv[1:] + ["-o", os.devnull])
import pyarrow
print(pyarrow.default_memory_pool().backend_name)
"""


@pytest.mark.parametrize("chosen", [None, "mimalloc"])
def test_arrow_takes_its_buffers_from_the_c_allocator_unless_told_otherwise(
    chosen: str | None,
) -> None:
    """A run over a case holds its events and alerts as Arrow: their buffers come from the C
    library's allocator (``cli``), or from the one the user names."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if chosen:
        env["ARROW_DEFAULT_MEMORY_POOL"] = chosen
    run = subprocess.run(
        [sys.executable, "-c", ARROW_POOL, "timeline", "-q", "-f", "jsonl", str(EXAMPLE)],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "PYTHONPATH": ""},
    )
    assert run.stdout.split() == [chosen or "system"], run.stderr
