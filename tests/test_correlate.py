"""The wire and the host joined, on the OTRF attack pairs (captures and the hosts' own logs).

Expected values come from the data: the raw NXLog records (read here with ``json``, not with
smbwatch) and tshark's view of the captures. Every command runs the installed console script.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import shared_dir
from detect_support import tshark_frames
from oracle import tool, tshark_fields

pytestmark = pytest.mark.oracle

OTRF = shared_dir() / "data" / "otrf"
PAIRS = {
    "sharpsc": sorted(OTRF.glob("covenant_sharpsc*")),  # SMB2 + svcctl on IPC$, Kerberos
    "psexec": sorted(OTRF.glob("empire_psexec*")),  # svcctl over TCP, packet privacy
    "wmi": sorted(OTRF.glob("empire_wmi*")),  # DCOM and IWbemServices over TCP
    "schtask": sorted(OTRF.glob("schtask*")),  # ITaskSchedulerService; the log 5 h behind
}
MISSING_WRITE = "Admin Share Write Seen on the Wire, Missing From the Server's Log"
MISSING_SERVICE = "Remote Service Creation Seen on the Wire, Missing From the Server's Log"


def smbwatch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "smbwatch.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)


def rows(*args: str | Path) -> list[dict[str, Any]]:
    done = smbwatch(*args, "-q", "-f", "jsonl")
    assert done.returncode in (0, 1, 3), done.stderr  # 3: the covenant capture is truncated
    return [json.loads(line) for line in done.stdout.splitlines()]


def captures(pair: list[Path]) -> list[Path]:
    return [p for p in pair if p.suffix in (".cap", ".pcapng")]


def host_log(pair: list[Path]) -> Path:
    (log,) = [p for p in pair if p.name.endswith(".json.gz")]
    return log


def raw(log: Path) -> list[dict[str, Any]]:
    """The log's records as NXLog wrote them."""
    with gzip.open(log, "rt") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def network_logons(log: Path) -> dict[tuple[str, int], set[str]]:
    """(client address, port) → the users the log's type-3 4624s name for it."""
    found: dict[tuple[str, int], set[str]] = {}
    for record in raw(log):
        if record.get("EventID") == 4624 and str(record.get("LogonType")) == "3":
            port = record.get("IpPort")
            if port and port != "-" and record.get("IpAddress") not in (None, "-"):
                key = (record["IpAddress"], int(port))
                found.setdefault(key, set()).add(record["TargetUserName"])
    return found


def connections(capture: Path) -> set[tuple[str, int]]:
    """The client address and port of every TCP connection the capture saw open (tshark)."""
    rows_ = tshark_fields(
        capture, "tcp.flags.syn == 1 && tcp.flags.ack == 0", ["ip.src", "tcp.srcport"]
    )
    return {(address, int(port)) for address, port in rows_}


def links(events: list[dict[str, Any]]) -> set[tuple[int, int, int]]:
    """(frame, record id, event id) of every link a network event carries."""
    return {
        (e["source_ref"], link["source_ref"], link["event_code"])
        for e in events
        if e["source"] == "network"
        for link in e.get("links") or ()
    }


@pytest.mark.parametrize("name", list(PAIRS))
def test_every_event_of_an_attack_connection_carries_the_user_its_host_logged(name: str) -> None:
    pair = PAIRS[name]
    logged = network_logons(host_log(pair))
    opened = set().union(*(connections(c) for c in captures(pair)))
    attacks = {key: users for key, users in logged.items() if key in opened}
    assert attacks, "the pair has connections the host logged"
    events = rows("timeline", *pair)
    for (address, port), users in attacks.items():
        (user,) = users  # one user per connection in these attacks
        on_it = [
            e
            for e in events
            if e["source"] == "network" and e["src_ip"] == address and e["src_port"] == port
        ]
        assert on_it, (address, port)
        for event in on_it:
            assert event["user"] == user, event
            assert event["filled_from"]["user"] == "host"  # Kerberos: the wire named nobody
    linked = [e for e in events if e["source"] == "network" and e.get("links")]
    assert linked and all((e["src_ip"], e["src_port"]) in attacks for e in linked)


def test_the_encrypted_svcctl_call_carries_the_service_its_4697_names() -> None:
    pair = PAIRS["psexec"]
    (install,) = [r for r in raw(host_log(pair)) if r.get("EventID") == 4697]
    (system,) = [
        r
        for r in raw(host_log(pair))
        if r.get("EventID") == 7045 and r.get("ServiceName") == install["ServiceName"]
    ]
    events = rows("timeline", *pair)
    for capture in captures(pair):
        (frame,) = tshark_frames(capture, "dcerpc.pkt_type == 0 && dcerpc.opnum == 24")  # A
        (call,) = [
            e for e in events if e["source_file"] == str(capture) and e["source_ref"] == frame
        ] or [None]
        if call is None:  # the other sensor's copy of the same message is the one shown
            assert any(str(capture) in e.get("seen_by", ()) for e in events)
            continue
        assert call["rpc_operation"] == "CreateServiceA" and call["encrypted"] is True
        assert call["service_name"] == install["ServiceName"]
        assert call["image_path"] == install["ServiceFileName"]
        assert call["user"] == install["SubjectUserName"]
        for name in ("service_name", "image_path", "start_type", "user"):
            assert call["filled_from"][name] == "host"
        assert {(link["source_ref"], link["event_code"]) for link in call["links"]} == {
            (install["RecordNumber"], 4697),
            (system["RecordNumber"], 7045),
        }
        host_side = [
            e
            for e in events
            if e["source"] == "host" and e.get("source_ref") == install["RecordNumber"]
        ]
        assert [link["source_ref"] for link in host_side[0]["links"]] == [frame]
        assert call["start_type"] == host_side[0]["start_type"]


def test_one_action_seen_by_both_sides_is_one_alert_confirmed_by_both() -> None:
    alerts = rows("detect", *PAIRS["psexec"])
    (service,) = [a for a in alerts if a.get("service_name") == "Updater"]
    assert service["confirmed_by"] == ["network", "host"]
    sources = {Path(item["source_file"]).suffix for item in service["evidence"]}
    assert sources == {".cap", ".gz"}  # the wire's CreateServiceA and the host's records
    alone = rows("detect", *captures(PAIRS["psexec"]))
    assert all(a["confirmed_by"] == ["network"] for a in alone)


def shifted(capture: Path, seconds: int, directory: Path) -> Path:
    """The capture with ``seconds`` added to every packet's time (editcap)."""
    out = directory / capture.name
    done = subprocess.run(
        [tool("editcap"), "-t", str(seconds), str(capture), str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.exists(), done.stderr
    return out


@pytest.mark.parametrize("seconds", [7 * 60, 5 * 3600], ids=["7 minutes", "5 hours"])
@pytest.mark.parametrize("name", ["sharpsc", "psexec"])
def test_links_survive_a_clock_offset_added_to_one_side(
    name: str, seconds: int, tmp_path: Path
) -> None:
    pair = PAIRS[name]
    capture = captures(pair)[-1]
    before = links(rows("timeline", capture, host_log(pair)))
    assert before
    moved = shifted(capture, seconds, tmp_path)
    done = smbwatch("timeline", "-f", "jsonl", moved, host_log(pair))
    after = links([json.loads(line) for line in done.stdout.splitlines()])
    assert after == before
    assert "clocks differ" in done.stderr  # and the offset is reported, not hidden


def test_links_name_each_other() -> None:
    events = rows("timeline", *PAIRS["sharpsc"])
    by_ref = {(e["source_file"], e.get("source_ref")): e for e in events}
    count = 0
    for event in events:
        for link in event.get("links") or ():
            other = by_ref[(link["source_file"], link["source_ref"])]
            assert other["source"] != event["source"]
            back = [(x["source_file"], x["source_ref"]) for x in other["links"]]
            assert (event["source_file"], event["source_ref"]) in back
            assert link["time_delta"] == pytest.approx(
                -next(
                    x["time_delta"]
                    for x in other["links"]
                    if x["source_ref"] == event["source_ref"]
                )
            )
            count += 1
    assert count >= 6  # logon, tree connect, open: each way


def without(log: Path, drop: Callable[[dict[str, Any]], bool], out: Path) -> tuple[Path, int]:
    """The log rewritten in its own shape (NXLog JSON lines) without the records ``drop``
    picks; every other record kept, in order."""
    dropped = 0
    with gzip.open(log, "rt") as lines, gzip.open(out, "wt") as kept:
        for line in lines:
            if line.strip() and drop(json.loads(line)):
                dropped += 1
                continue
            kept.write(line)
    return out, dropped


def test_a_write_the_log_misses_is_found(tmp_path: Path) -> None:
    pair = PAIRS["sharpsc"]
    (capture,) = captures(pair)
    assert not [a for a in rows("detect", *pair) if a["title"] == MISSING_WRITE]

    def the_pipe_open(r: dict[str, Any]) -> bool:
        return r.get("EventID") == 5145 and r.get("RelativeTargetName") == "svcctl"

    log, dropped = without(host_log(pair), the_pipe_open, tmp_path / "log.json.gz")
    assert dropped == 1
    (found,) = [a for a in rows("detect", capture, log) if a["title"] == MISSING_WRITE]
    opened = tshark_fields(
        capture,
        'smb2.cmd == 5 && smb2.flags.response == 0 && smb2.filename == "svcctl"',
        ["frame.number"],
    )
    assert [e["source_ref"] for e in found["evidence"]] == [int(f) for (f,) in opened]
    assert found["attack"] == ["T1562.002", "T1070.001"] and found["risk_score"] >= 70
    assert found["path"] == "svcctl" and found["user"] == "pgustavo"


def test_a_service_the_logs_miss_is_found(tmp_path: Path) -> None:
    pair = PAIRS["psexec"]
    capture = captures(pair)[-1]
    assert not [a for a in rows("detect", capture, host_log(pair)) if a["title"] == MISSING_SERVICE]

    def the_installation(r: dict[str, Any]) -> bool:
        return r.get("EventID") in (4697, 7045) and r.get("ServiceName") == "Updater"

    log, dropped = without(host_log(pair), the_installation, tmp_path / "log.json.gz")
    assert dropped == 2
    (found,) = [a for a in rows("detect", capture, log) if a["title"] == MISSING_SERVICE]
    frames = tshark_frames(capture, "dcerpc.pkt_type == 0 && dcerpc.opnum == 24")
    assert [e["source_ref"] for e in found["evidence"]] == frames
    assert "T1562.002" in found["attack"]


@pytest.mark.parametrize("side", ["captures", "logs"])
def test_a_case_of_one_side_links_nothing_even_when_correlated_whole(
    side: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A case of captures alone, or of host logs alone, is not correlated (``_BOTH_SIDES``):
    the whole correlation, run on it all the same, finds nothing to link, fill or mark, with
    every OTRF pair's captures (or logs) in the case."""
    from smbwatch.case import correlate
    from smbwatch.case.ingest import ingest
    from smbwatch.case.store import Case
    from smbwatch.diagnostics import Diagnostics

    inputs = [
        path
        for pair in PAIRS.values()
        for path in (captures(pair) if side == "captures" else [host_log(pair)])
    ]
    with Case.open(tmp_path / "case", write=True) as case:
        ingest(case, [str(path) for path in inputs], Diagnostics(), [])
        assert case.rows("SELECT count(*) FROM correlation")[0][0] == 0
        sources, events = case.rows("SELECT count(DISTINCT source), count(*) FROM event_rows")[0]
        assert sources == 1 and events > 50
        monkeypatch.setattr(correlate, "_BOTH_SIDES", "SELECT true")
        with case.transaction("correlated whole"):
            correlate.correlate(case)
        assert case.rows("SELECT count(*) FROM correlation")[0][0] == 0
