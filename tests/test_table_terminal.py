"""The table on a real terminal: smbwatch run on a pseudo-terminal 120 columns wide writes one
line per event or alert, none longer than the terminal, timestamps whole to the second."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from smbwatch.sinks.table import EVENT_COLUMNS, write_table

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lateral-movement.pcap"
WIDTH = 120
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def on_terminal(*args: str, width: int = WIDTH) -> list[str]:
    """What ``smbwatch ARGS`` shows on a pseudo-terminal ``width`` columns wide, line by line."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, width, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(
        [sys.executable, "-m", "smbwatch.cli", *args, "-j", "1"],
        stdout=terminal,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # the terminal closed: the program ended
            break
        if not chunk:
            break
        output += chunk
    process.wait(timeout=120)
    os.close(controller)
    text = ANSI.sub("", output.decode("utf-8"))
    return [line for line in text.replace("\r\n", "\n").split("\n") if line]


def jsonl(*args: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "smbwatch.cli", *args, "-f", "jsonl"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def narrow(lines: list[str]) -> bool:
    """Every character takes one terminal cell (ASCII and the ellipsis): length is width."""
    return all(ch.isascii() or ch == "…" for line in lines for ch in line)


def test_events_one_line_each_within_120_columns() -> None:
    lines = on_terminal("events", str(EXAMPLE))
    events = jsonl("events", str(EXAMPLE))
    assert narrow(lines) and max(len(line) for line in lines) <= WIDTH
    title, header, *rows = lines
    assert title == "SMB events" and header.split()[:3] == ["time", "action", "client"]
    assert len(rows) == len(events)
    for row, event in zip(rows, events, strict=True):
        assert row.startswith(event["time"][:19] + "Z")  # to the second, never cut
        assert event["action"] in row


def test_alerts_one_line_each_within_120_columns() -> None:
    lines = on_terminal("detect", str(EXAMPLE))
    alerts = jsonl("detect", str(EXAMPLE))
    assert narrow(lines) and max(len(line) for line in lines) <= WIDTH
    title, header, *rows = lines
    assert title == "smbwatch alerts" and header.split()[:2] == ["risk", "rule"]
    assert len(rows) == len(alerts) > 3
    for row, alert in zip(rows, alerts, strict=True):
        assert row.split()[0] == str(alert["risk_score"])
        assert SECOND.search(row).group() == alert["first_time"][:19] + "Z"


def test_wider_terminals_show_more() -> None:
    narrow_rows = on_terminal("detect", str(EXAMPLE))
    wide_rows = on_terminal("detect", str(EXAMPLE), width=220)
    assert max(len(line) for line in wide_rows) <= 220
    assert len(wide_rows[1].split()) > len(narrow_rows[1].split())  # more columns
    assert "…" in narrow_rows[2] and len(wide_rows[2]) > len(narrow_rows[2])


def test_wide_keeps_every_value_whole() -> None:
    lines = on_terminal("detect", str(EXAMPLE), "--wide")
    alerts = jsonl("detect", str(EXAMPLE))
    for row, alert in zip(lines[2:], alerts, strict=True):
        assert alert["first_time"] in row and alert["message"] in row


def test_ipv6_endpoints_are_bracketed() -> None:
    out = io.StringIO()
    row = {
        "time": "2024-05-01T10:00:00.123456Z",
        "action": "logon",
        "src_ip": "fe80::1",
        "src_port": 50000,
        "dst_ip": "fe80::2",
        "dst_port": 445,
    }
    write_table([row], out, EVENT_COLUMNS, "SMB events")
    assert "[fe80::1]:50000" in out.getvalue() and "[fe80::2]:445" in out.getvalue()
    assert "2024-05-01T10:00:00Z" in out.getvalue() and ".123456" not in out.getvalue()
