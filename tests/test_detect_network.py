"""Rules on events decoded from real captures (../shared/data), with tshark as the oracle."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

from conftest import shared_dir

from smbwatch.detect.engine import detect
from smbwatch.detect.sigma import RuleSet, load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import capture_events

DATA = shared_dir() / "data"
SIGMA = shared_dir() / "sigma"
PSEXEC_TCP = next((DATA / "suricata-verify" / "dcerpc-dce-iface-01").glob("*.pcap"))
SERVICE_CREATION = "Remote Service Created or Reconfigured Through svcctl"


@cache
def all_rules() -> RuleSet:
    return load_rules([SIGMA])


def tshark_frames(capture: Path, display_filter: str) -> list[int]:
    done = subprocess.run(
        [
            "tshark",
            "-n",
            "-r",
            str(capture),
            "-Y",
            display_filter,
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [int(line) for line in done.stdout.split()]


def alerts_on(capture: Path) -> list[dict]:
    return detect(capture_events(str(capture), Diagnostics()), all_rules())


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
