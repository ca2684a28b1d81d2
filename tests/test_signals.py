"""SIGINT and SIGTERM stop ``smbwatch events`` cleanly: 130 or 143 within a second, no
traceback, no process left behind (the hashing child, the workers), and an output file whose
every line is a whole JSON object.

The large capture is the real SMB2 session of the corpus (file transfers: the hashing child runs)
repeated, each copy a connection of its own (another client port).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_support import DATA, SMB2_CAPTURE
from oracle import read_pcap_records, write_pcap

pytestmark = pytest.mark.unit

COPIES = 400  # about 200 MB: several seconds of work for the compiled build
SERVER_PORT = 445


@pytest.fixture(scope="module")
def large_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    linktype, records = read_pcap_records(SMB2_CAPTURE)
    frames = []
    for copy in range(COPIES):
        client_port = (20000 + copy).to_bytes(2, "big")
        for seconds, micros, frame in records:
            if len(frame) >= 38 and frame[12:14] == b"\x08\x00" and frame[23] == 6:
                ports = frame[34:38]
                if ports[2:4] == SERVER_PORT.to_bytes(2, "big"):  # client to server
                    frame = frame[:34] + client_port + frame[36:]
                elif ports[:2] == SERVER_PORT.to_bytes(2, "big"):
                    frame = frame[:36] + client_port + frame[38:]
            frames.append((seconds + copy, micros, frame))
    path = tmp_path_factory.mktemp("signals") / "large.pcap"
    write_pcap(path, linktype, frames)
    return path


def session_processes(session: int) -> list[int]:
    """The processes still alive in the session the run was started in."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session and fields[0] != "Z":  # the session id; not a zombie
            alive.append(int(entry.name))
    return alive


def lines_written(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize(
    ("signum", "code", "whole_group", "jobs"),
    [
        (signal.SIGINT, 130, True, 1),  # Ctrl-C: the terminal signals the whole group
        (signal.SIGTERM, 143, False, 1),  # kill: the process alone
        (signal.SIGINT, 130, False, 2),  # worker processes, one per input
        (signal.SIGTERM, 143, True, 2),
    ],
)
def test_a_signal_stops_the_run_cleanly(
    large_capture: Path, tmp_path: Path, signum: int, code: int, whole_group: bool, jobs: int
) -> None:
    out = tmp_path / "events.jsonl"
    inputs = [str(large_capture)] * jobs
    command = [sys.executable, "-m", "smbwatch.cli", "events", *inputs, "-j", str(jobs)]
    run = subprocess.Popen(
        [*command, "-f", "jsonl", "-o", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while lines_written(out) < 1000 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # until it is busy writing events
    assert run.poll() is None, "the run ended before it could be interrupted"
    sent = time.monotonic()
    if whole_group:
        os.killpg(run.pid, signum)
    else:
        run.send_signal(signum)
    try:
        run.wait(timeout=10)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    took = time.monotonic() - sent
    stderr = run.stderr.read() if run.stderr else ""
    assert run.returncode == code, stderr
    assert took < 1.0, f"stopped {took:.2f} s after the signal"
    assert "Traceback" not in stderr and "fatal" not in stderr, stderr
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b""  # ends with a whole line
    events = [json.loads(line) for line in lines[:-1]]  # every line a whole JSON object
    assert len(events) >= 1000 and all(event["source"] == "network" for event in events)
    for _ in range(40):  # the hashing child finishes what it was given, then ends
        if not session_processes(run.pid):
            break
        time.sleep(0.05)
    assert session_processes(run.pid) == [], "a process was left behind"


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


def test_a_worker_killed_costs_its_input_not_a_hang(large_capture: Path, tmp_path: Path) -> None:
    """A worker process that dies without a word (the OOM killer, a kill -9) is damage to its
    input (exit 3); the next input is still read."""
    out = tmp_path / "events.jsonl"
    log = DATA / "host" / "empire_smbexec_dcerpc_smb_svcctl_2020-09-20025716.json.gz"
    command = [sys.executable, "-m", "smbwatch.cli", "events", "-j", "2", "-f", "jsonl"]
    run = subprocess.Popen(
        [*command, "-o", str(out), str(large_capture), str(log)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while lines_written(out) < 1000 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = children(run.pid)
    assert run.poll() is None and workers, "no worker to kill"
    os.kill(workers[0], signal.SIGKILL)  # the first started: the large capture's
    try:
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    stderr = run.stderr.read() if run.stderr else ""
    assert run.returncode == 3, stderr
    assert "worker process ended early" in stderr and "Traceback" not in stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(event["source_file"] == str(log) for event in events)
