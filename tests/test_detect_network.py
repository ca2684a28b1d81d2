"""Rules on events decoded from real captures (../shared/data), with tshark as the oracle."""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pytest
from conftest import shared_dir
from detect_support import alert_dicts, tshark_frames
from oracle import tshark_fields

from smbwatch.detect.alert import shorten
from smbwatch.detect.sigma import RuleSet, load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import capture_events

pytestmark = pytest.mark.oracle

DATA = shared_dir() / "data"
SIGMA = shared_dir() / "sigma"
PSEXEC_TCP = next((DATA / "suricata-verify" / "dcerpc-dce-iface-01").glob("*.pcap"))
SERVICE_CREATION = "Remote Service Created or Reconfigured Through svcctl"


@cache
def all_rules() -> RuleSet:
    return load_rules([SIGMA])


def alerts_on(capture: Path) -> list[dict]:
    return alert_dicts(capture_events(str(capture), Diagnostics()), all_rules())


def test_service_creation_over_dcerpc_even_when_sealed() -> None:
    """PsExec's svcctl CreateServiceWOW64W (opnum 45) is sealed: the call is still seen."""
    alerts = alerts_on(PSEXEC_TCP)
    (creation,) = [a for a in alerts if a["title"] == SERVICE_CREATION]
    requests = tshark_frames(PSEXEC_TCP, "svcctl.opnum == 45 && dcerpc.pkt_type == 0")
    assert [e["source_ref"] for e in creation["evidence"]] == requests
    assert creation["rpc_operation"] == "CreateServiceWOW64W"
    assert (creation["src_ip"], creation["dst_ip"]) == ("192.168.10.31", "192.168.10.30")
    bzar = next(a for a in alerts if a["title"] == "MITRE BZAR Indicators for Execution")
    starts = tshark_frames(PSEXEC_TCP, "svcctl.opnum == 19 && dcerpc.pkt_type == 0")
    assert [e["source_ref"] for e in bzar["evidence"]] == starts  # StartServiceW, Zeek's names


PCAPS = DATA / "pcap"
SMBEXEC = sorted(PCAPS.glob("empire_smbexec_*.cap"))
SHARPSC = next(PCAPS.glob("covenant_sharpsc_*.cap"))
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lateral-movement.pcap"


def tshark_service_creations(capture: Path) -> list[tuple[int, str, str]]:
    """(first frame, service name, binary path) of each RCreateServiceW request, per tshark."""
    request = "svcctl.opnum == 12 && dcerpc.pkt_type == 0"
    names = tshark_fields(capture, request, ["svcctl.servicename", "svcctl.binarypathname"])
    frames = tshark_frames(capture, request)
    return [(frame, name, path) for frame, (name, path) in zip(frames, names, strict=True)]


@pytest.mark.parametrize("capture", [*SMBEXEC, EXAMPLE], ids=lambda p: p.name[:40])
def test_remote_service_creation_shows_the_decoded_binary_path(capture: Path) -> None:
    """smbexec (Empire) and PsExec: CreateServiceW over the svcctl pipe, checked with tshark."""
    expected = tshark_service_creations(capture)
    assert expected
    alerts = [a for a in alerts_on(capture) if a["title"] == SERVICE_CREATION]
    got = [
        (e["source_ref"], a["service_name"], a["image_path"]) for a in alerts for e in a["evidence"]
    ]
    assert sorted(got) == sorted(expected)
    for alert in alerts:  # the message shows at most 200 characters of a value, the field all
        assert shorten(alert["image_path"]) in alert["message"]
        assert alert["service_name"] in alert["message"]


def test_sharpsc_service_creation_matches_the_hosts_4697() -> None:
    """SharpSC's CreateServiceA (tshark does not decode its arguments): the target's own 4697
    record of the same attack, read straight from the NXLog JSON, is the oracle."""
    with gzip.open(next((DATA / "host").glob("covenant_sharpsc_*.json.gz")), "rt") as log:
        records = [json.loads(line) for line in log]
    (installed,) = [r for r in records if r.get("EventID") == 4697]
    (alert,) = [a for a in alerts_on(SHARPSC) if a["title"] == SERVICE_CREATION]
    assert alert["rpc_operation"] == "CreateServiceA"
    assert alert["service_name"] == installed["ServiceName"]
    assert alert["image_path"] == installed["ServiceFileName"]
    assert installed["ServiceFileName"] in alert["message"]


def test_example_capture_story() -> None:
    """The PsExec-like example: the payload on ADMIN$ of FILESRV and then of BACKUP01 (the
    second hop), the service, the PE named invoice.txt."""
    alerts = alerts_on(EXAMPLE)
    titles = {a["title"] for a in alerts}
    dropped, onward = sorted(
        (a for a in alerts if a["title"] == "Executable Written to an Administrative Share"),
        key=lambda a: a["first_time"],
    )
    assert (onward["share"], onward["path"]) == ("\\\\BACKUP01\\ADMIN$", "psexesvc.exe")
    assert (onward["src_ip"], onward["dst_ip"]) == ("10.45.0.10", "10.45.0.30")
    assert onward["sha256"] == dropped["sha256"] is not None  # the same file, one hop on
    assert (dropped["share"], dropped["path"]) == ("\\\\FILESRV\\ADMIN$", "psexesvc.exe")
    creates = tshark_frames(
        EXAMPLE, 'smb2.cmd == 5 && smb2.filename == "psexesvc.exe" && ip.dst == 10.45.0.10'
    )
    opened = f"smb2.cmd == 5 && smb2.flags.response == 1 && smb2.response_to == {creates[0]}"
    ((fid,),) = tshark_fields(EXAMPLE, opened, ["smb2.fid"])
    writes = tshark_frames(
        EXAMPLE, f"smb2.cmd == 9 && smb2.flags.response == 0 && smb2.fid == {fid}"
    )
    assert sorted(e["source_ref"] for e in dropped["evidence"]) == sorted(creates + writes)
    (disguised,) = [
        a for a in alerts if a["title"] == "Executable Written Under a Non-Executable Name"
    ]
    assert (disguised["share"], disguised["path"]) == ("\\\\FILESRV\\data", "invoice.txt")
    assert "Write Executable in SMB Share" not in titles  # the exact-0x2 test misses it
