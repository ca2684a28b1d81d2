"""The OTRF attack pairs (../shared/data/otrf: captures and the hosts' own logs of the same
attacks): each technique raises the alert a responder needs, with the who/where/what as fields.
The oracles are tshark's dissection of the captures and the raw JSON records of the logs.
"""

from __future__ import annotations

import base64
import gzip
import json
import xml.etree.ElementTree as ElementTree
from functools import cache
from pathlib import Path

import pytest
from detect_support import OTRF, tshark_frames
from oracle import tshark_fields

from smbwatch.detect.alert import Alert
from smbwatch.detect.engine import detect
from smbwatch.detect.sigma import load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import capture_events
from smbwatch.winlog import read_events

pytestmark = pytest.mark.oracle

ZEROLOGON_CAP = next(OTRF.glob("mimikatz_CVE-2020-1472_*.cap"))
ZEROLOGON_LOG = next(OTRF.glob("mimikatz_CVE-2020-1472_*.json.gz"))
SHARPSC_START = next(OTRF.glob("covenant_sharpsc_start_*.cap"))
SCHTASK_LOG = next(OTRF.glob("schtask_create_*.json.gz"))
SCHTASK_CAP = next(OTRF.glob("schtask_create_*.pcapng"))
PSEXEC_LOG = next(OTRF.glob("empire_psexec_dcerpc_tcp_svcctl_*.json.gz"))
PSEXEC_CAP = next(OTRF.glob("empire_psexec_dcerpc_tcp_svcctl_WORKSTATION6_*.cap"))
WMI_CAP = next(OTRF.glob("empire_wmi_*WORKSTATION6_*.cap"))
ATTACKER, TARGET, DC = "172.18.39.5", "172.18.39.6", "172.18.38.5"
TASK_NS = "{http://schemas.microsoft.com/windows/2004/02/mit/task}"


@cache
def alerts_of(path: Path) -> list[Alert]:
    diagnostics = Diagnostics()
    if path.suffix == ".gz":
        events = list(read_events(str(path), diagnostics))
    else:
        events = list(capture_events(str(path), diagnostics))
    return detect(events, load_rules(), diagnostics)


def records(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as log:
        return [json.loads(line) for line in log if line.strip()]


def titled(path: Path, start: str) -> list[Alert]:
    return [a for a in alerts_of(path) if a.title.startswith(start)]


def test_zerologon_capture() -> None:
    (burst,) = titled(ZEROLOGON_CAP, "Zerologon: Burst")
    zero = "netlogon.opnum == 15 && netlogon.clientcred == 00:00:00:00:00:00:00:00"
    attempts = tshark_frames(ZEROLOGON_CAP, f"{zero} && dcerpc.pkt_type == 0")
    assert len(attempts) == 445  # 444 refused, then the one accepted
    assert [e["source_ref"] for e in burst.evidence] == attempts
    assert burst.count == len(attempts)
    for alert in [burst, *titled(ZEROLOGON_CAP, "Zerologon: ")]:
        assert "T1210" in alert.attack and alert.risk_score >= 80
        assert (alert.src_ip, alert.dst_ip) == (ATTACKER, DC)  # the client and the DC
    ((account,),) = set(map(tuple, tshark_fields(ZEROLOGON_CAP, zero, ["netlogon.acct_name"])))
    assert account in burst.message
    (accepted,) = titled(ZEROLOGON_CAP, "Zerologon: Secure Channel Established")
    answered = tshark_fields(
        ZEROLOGON_CAP, "netlogon.opnum == 15 && dcerpc.pkt_type == 2", ["netlogon.rc"]
    )
    assert [int(rc, 16) for (rc,) in answered].count(0) == 1  # one success, as the alert says
    assert [e["source_ref"] for e in accepted.evidence] == attempts[-1:]
    (reset,) = titled(ZEROLOGON_CAP, "Zerologon: Machine Account Password Reset")
    assert [e["source_ref"] for e in reset.evidence] == tshark_frames(
        ZEROLOGON_CAP, "netlogon.opnum == 30 && dcerpc.pkt_type == 0"
    )
    assert reset.risk_score == 100


def test_zerologon_in_the_dc_log() -> None:
    (changed,) = [r for r in records(ZEROLOGON_LOG) if r["EventID"] == 4742]
    (alert,) = titled(ZEROLOGON_LOG, "Zerologon: Computer Account Changed by ANONYMOUS LOGON")
    assert alert.evidence == [
        {"source_file": str(ZEROLOGON_LOG), "source_ref": changed["RecordNumber"]}
    ]
    assert changed["TargetUserName"] in alert.message and alert.user == changed["SubjectUserName"]
    assert alert.risk_score >= 80 and "T1210" in alert.attack


def test_sharpsc_start_names_the_service() -> None:
    (started,) = titled(SHARPSC_START, "Remote Service Started Through svcctl")
    opened = tshark_fields(
        SHARPSC_START, "svcctl.opnum == 16 && dcerpc.pkt_type == 0", ["svcctl.servicename"]
    )
    ((service,),) = set(map(tuple, opened))  # each OpenServiceW names the same service
    assert started.service_name == service and service in started.message
    assert [e["source_ref"] for e in started.evidence] == tshark_frames(
        SHARPSC_START, "svcctl.opnum == 19 && dcerpc.pkt_type == 0"
    )
    assert (started.src_ip, started.dst_ip) == (ATTACKER, TARGET)
    assert started.risk_score >= 50 and "T1569.002" in started.attack
    assert started.message.startswith("(unknown user) from 172.18.39.5")  # Kerberos: no user


def test_schtask_create_in_the_host_log() -> None:
    (created,) = [r for r in records(SCHTASK_LOG) if r["EventID"] == 4698]
    task = ElementTree.fromstring(created["TaskContent"].encode("utf-16"))
    command = task.find(f"{TASK_NS}Actions/{TASK_NS}Exec/{TASK_NS}Command").text
    arguments = task.find(f"{TASK_NS}Actions/{TASK_NS}Exec/{TASK_NS}Arguments").text
    (alert,) = [a for a in alerts_of(SCHTASK_LOG) if "T1053.005" in a.attack]
    assert alert.task_name == created["TaskName"] and alert.task_name in alert.message
    assert alert.command == f"{command} {arguments}" and alert.command in alert.message
    assert (alert.user, alert.src_ip) == (created["SubjectUserName"], ATTACKER)
    assert alert.risk_score >= 50
    assert alert.title == "Scheduled Task Created by a Network Logon Session"  # one alert


def test_schtask_create_on_the_wire_says_what_is_hidden() -> None:
    (alert,) = titled(SCHTASK_CAP, "Remote Scheduled Task Created Through RPC")
    assert alert.rpc_operation == "SchRpcRegisterTask" and alert.task_name is None
    assert alert.message.endswith("[arguments encrypted: DCE/RPC packet privacy]")
    assert "task (encrypted)" in alert.message


def test_psexec_over_tcp_service_creation_with_user_and_source() -> None:
    (installed,) = [r for r in records(PSEXEC_LOG) if r["EventID"] == 4697]
    (host,) = titled(PSEXEC_LOG, "Service Installed")
    assert (host.user, host.src_ip) == ("pgustavo", ATTACKER)
    assert (host.service_name, host.image_path) == (
        installed["ServiceName"],
        installed["ServiceFileName"],
    )
    assert len(host.message) < len(installed["ServiceFileName"]) and "…" in host.message
    payload = installed["ServiceFileName"].split("-enc", 1)[1].split()[0]
    assert host.command_decoded == base64.b64decode(payload).decode("utf-16-le")
    assert "System.Management.Automation" in host.command_decoded
    (wire,) = titled(PSEXEC_CAP, "Remote Service Created or Reconfigured Through svcctl")
    assert (wire.src_ip, wire.dst_ip, wire.rpc_operation) == (ATTACKER, TARGET, "CreateServiceA")
    assert "[arguments encrypted: DCE/RPC packet privacy]" in wire.message
    assert wire.risk_score >= 50


def test_wmi_remote_execution() -> None:
    (method,) = titled(WMI_CAP, "Remote WMI Method Executed")
    assert method.attack == ["T1047"] and method.risk_score >= 50
    assert [e["source_ref"] for e in method.evidence] == tshark_frames(
        WMI_CAP, "dcerpc.opnum == 24 && dcerpc.pkt_type == 0 && dcerpc.cn_flags.first_frag == 1"
    )
    assert "(encrypted)" in method.message  # sealed: the class and method are not on the wire
    (session,) = titled(WMI_CAP, "Remote WMI Session Opened")
    ((clsid,),) = tshark_fields(
        WMI_CAP,
        "isystemactivator.opnum == 4 && dcerpc.pkt_type == 0",
        ["isystemactivator.properties.instninfo.clsid"],
    )
    assert clsid == "8bc3f05e-d86b-11d0-a075-00c04fb68820"  # CLSID_WbemLevel1Login
    assert (session.src_ip, session.dst_ip) == (ATTACKER, TARGET)
