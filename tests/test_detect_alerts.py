"""What makes an alert actionable: actions counted, one alert per action and rule family, long
values decoded and shortened for people and kept whole for machines, and the same operations by
the system itself or a domain controller left out. Events are real records and captures,
changed where a case needs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from detect_support import OTRF, tshark_frames

from smbwatch.detect.alert import SHOWN_CHARS, decode_powershell, shorten
from smbwatch.detect.engine import detect
from smbwatch.detect.sigma import load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.pipeline import capture_events
from smbwatch.winlog import read_events

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "lateral-movement.pcap"
RULES = load_rules()


def events(path: Path) -> list[SmbEvent]:
    diagnostics = Diagnostics()
    if path.suffix == ".gz":
        return list(read_events(str(path), diagnostics))
    return list(capture_events(str(path), diagnostics))


def test_count_is_actions_an_open_with_its_writes_is_one() -> None:
    """The example writes psexesvc.exe to FILESRV in one open: its CREATE and WRITE are one
    action; the sha256 the close event has is on the alert."""
    server = "10.45.0.10"  # FILESRV, the first hop (examples/README.md)
    alerts = [a for a in detect(events(EXAMPLE), RULES) if a.dst_ip == server]
    (dropped,) = [a for a in alerts if a.title == "Executable Written to an Administrative Share"]
    creates = tshark_frames(
        EXAMPLE, f'smb2.cmd == 5 && smb2.filename == "psexesvc.exe" && ip.dst == {server}'
    )
    assert len(dropped.evidence) == 2 and dropped.count == len(creates) == 1
    closes = [
        e
        for e in events(EXAMPLE)
        if e.action == "close" and e.path == "psexesvc.exe" and e.dst_ip == server
    ]
    assert dropped.sha256 == closes[0].sha256 is not None
    (pipe,) = [a for a in alerts if a.title == "Service Control Pipe Opened for Writing"]
    assert pipe.count == 1  # one open of svcctl (a 5145 and its network CREATE were two before)


def test_one_installation_one_alert_with_both_records() -> None:
    log = next(OTRF.glob("empire_psexec_dcerpc_tcp_svcctl_*.json.gz"))
    alerts = [a for a in detect(events(log), RULES) if "Installed" in a.title]
    codes = {e.source_ref: e.event_code for e in events(log)}
    (alert,) = alerts
    assert sorted(codes[e["source_ref"]] for e in alert.evidence) == [4624, 4697, 7045]
    assert alert.count == 2  # the logon and the installation
    assert set(alert.attack) >= {"T1569.002", "T1543.003", "T1021.002"}


def test_long_values_are_decoded_and_shortened_for_people_kept_whole_for_machines() -> None:
    log = next(OTRF.glob("empire_psexec_dcerpc_tcp_svcctl_*.json.gz"))
    (alert,) = [a for a in detect(events(log), RULES) if "Installed" in a.title]
    assert len(alert.image_path) > 5000 and alert.command == alert.image_path
    assert shorten(alert.image_path) in alert.message
    assert len(shorten(alert.image_path)) == SHOWN_CHARS and shorten("x" * 300).endswith("…")
    assert alert.to_dict()["image_path"] == alert.image_path  # JSON keeps everything
    assert alert.command_decoded.startswith("If($PSVErSiOnTablE.PSVERsIOn.Major -GE 3)")


def test_encoded_commands_in_any_spelling_and_hostile_payloads() -> None:
    script = "Write-Output 'hi'"
    payload = script.encode("utf-16-le").hex()
    encoded = __import__("base64").b64encode(bytes.fromhex(payload)).decode()
    for flag in ("-e", "-enc", "-EncodedCommand", "/ec", "-ENCODEDCOMMAND"):
        assert decode_powershell(f"powershell.exe -nop {flag} {encoded}") == script
    assert decode_powershell(f"cmd.exe /c -enc {encoded}") is None  # not PowerShell
    assert decode_powershell("powershell -enc !!!notbase64!!!") is None
    assert decode_powershell("powershell -enc " + "A" * 3) is None
    assert decode_powershell("powershell -enc " + "QQ" * 600_000) is None  # over the bound


def test_a_task_the_system_updates_itself_is_not_high_risk() -> None:
    log = next(OTRF.glob("schtask_create_*.json.gz"))
    created = next(e for e in events(log) if e.event_code == 4698)
    by_system = created.copy(
        event_code=4702, action="task_update", user="WORKSTATION6$", session_id="0x3e7"
    )
    assert not [a for a in detect([by_system], RULES) if a.risk_score >= 50]
    by_user = created.copy(event_code=4702, action="task_update", session_id="0x99")
    (alert,) = detect([by_user], RULES)
    assert alert.title == "Scheduled Task Created or Updated by a User" and alert.risk_score >= 50


def test_a_domain_controllers_own_machine_account_is_not_high_risk() -> None:
    """The DC is learnt from the inputs: it answers netlogon, and clients reach it as FILESRV."""
    example = events(EXAMPLE)
    create = next(e for e in example if e.rpc_operation == "CreateServiceW")
    netlogon = next(
        e
        for e in events(next(OTRF.glob("mimikatz_*.cap")))
        if e.rpc_operation == "NetrServerReqChallenge"
    )
    answered = netlogon.copy(dst_ip=create.dst_ip)  # the example's server answers netlogon
    title = "Remote Service Created or Reconfigured Through svcctl"
    by_dc = create.copy(src_ip="10.45.0.30", user="FILESRV$")
    assert title in {a.title for a in detect([*example, by_dc], RULES)}  # not known as a DC yet
    found = detect([*example, answered, by_dc], RULES)
    (alert,) = [a for a in found if a.title == title]
    assert alert.user == "Administrator"  # the example's own, not the DC's account
    by_other = create.copy(src_ip="10.45.0.30", user="WKSTN02$")
    assert len([a for a in detect([*example, answered, by_other], RULES) if a.title == title]) == 2


def test_rules_list_separates_detections_from_helpers_and_names_techniques() -> None:
    command = [sys.executable, "-m", "smbwatch.cli", "rules", "list"]
    done = subprocess.run([*command, "-f", "jsonl"], capture_output=True, text=True, check=True)
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    helpers = {row["title"] for row in rows if row["role"] == "helper"}
    assert "Network Logon From a Remote Address" in helpers
    assert all(not row["attack"] for row in rows if row["role"] == "helper")
    table = subprocess.run(
        [*command, "-f", "table", "--wide"], capture_output=True, text=True, check=True
    ).stdout
    detections, _, helper_part = table.partition("helper rules")
    assert "Network Logon From a Remote Address" in helper_part
    assert "Network Logon From a Remote Address" not in detections
    assert "T1210 Exploitation of Remote Services" in detections
    assert "T1003.006 DCSync" in detections
