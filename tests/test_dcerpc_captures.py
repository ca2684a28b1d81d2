"""RpcPipe on real captures: operations and arguments checked against tshark, Windows' own event
log of the same attack, and Suricata's expectations (suricata-verify test.yaml)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from dcerpc_capture import capture_calls, smb2_pipes, tcp_streams
from impacket.dcerpc.v5 import lsad, lsat, samr
from oracle import tshark_fields

from smbwatch.dcerpc.svcctl import START_TYPES, service_type_name
from smbwatch.diagnostics import Diagnostics

pytestmark = pytest.mark.oracle

SMBEXEC = [
    "pcap/empire_smbexec_dcerpc_smb_svcctl_WORKSTATION5_2020-09-20025716.cap",
    "pcap/empire_smbexec_dcerpc_smb_svcctl_WORKSTATION6_2020-09-20025716.cap",
]
SHARPSC = "pcap/covenant_sharpsc_create_dcerpc_smb_svcctl_2020-08-06022635.cap"
SHARPSC_HOST = "host/covenant_sharpsc_create_dcerpc_smb_svcctl_2020-08-06022635.json.gz"
PSEXEC = "suricata-verify/dcerpc-dce-iface-01"
NET_USER = "suricata-verify/smb2-06"


def requests(calls):
    return [call for call in calls if call.opnum is not None]


@pytest.mark.parametrize("capture", SMBEXEC)
def test_smbexec_svcctl_matches_tshark(shared_data: Path, capture: str) -> None:
    diagnostics = Diagnostics()
    calls = requests(capture_calls(smb2_pipes(shared_data / capture), diagnostics))
    rows = tshark_fields(
        shared_data / capture,
        "svcctl && dcerpc.pkt_type == 0",
        [
            "svcctl.opnum",
            "svcctl.servicename",
            "svcctl.displayname",
            "svcctl.binarypathname",
            "svcctl.service_start_type",
            "svcctl.service_type",
            "svcctl.machinename",
            "svcctl.database",
        ],
    )
    assert [call.opnum for call in calls] == [int(row[0]) for row in rows]
    checked = 0
    for call, (_, name, display, path, start, kind, machine, database) in zip(
        calls, rows, strict=True
    ):
        assert call.interface == "svcctl"
        if call.operation == "CreateServiceW":
            assert call.args["service_name"] == name
            assert call.args["display_name"] == display
            assert call.args["binary_path"] == path
            assert call.args["start_type"] == START_TYPES[int(start, 0)]
            assert call.args["service_type"] == service_type_name(int(kind, 0))
            assert call.status == "ERROR_SUCCESS"
            checked += 1
        if call.operation == "OpenSCManagerW":
            assert (call.args["machine_name"], call.args["database_name"]) == (machine, database)
    assert checked == 1
    create = next(call for call in calls if call.operation == "CreateServiceW")
    assert create.args["binary_path"].startswith("%COMSPEC% /C ")
    # StartServiceW/DeleteService name the service through the handle CreateServiceW returned.
    named = {
        call.operation: call.args for call in calls if call.args and "service_name" in call.args
    }
    assert named["StartServiceW"]["service_name"] == create.args["service_name"]
    assert named["DeleteService"]["service_name"] == create.args["service_name"]
    assert not {
        kind for kind in diagnostics.counts if kind.startswith("dcerpc_") and "error" in kind
    }


def test_sharpsc_create_service_a_matches_the_host_log(shared_data: Path) -> None:
    """tshark does not decode CreateServiceA; the target's own 4697/7045 events are the oracle."""
    calls = requests(capture_calls(smb2_pipes(shared_data / SHARPSC)))
    creates = [call for call in calls if call.operation == "CreateServiceA"]
    assert len(creates) == 1 and creates[0].opnum == 24 and creates[0].status == "ERROR_SUCCESS"
    with gzip.open(shared_data / SHARPSC_HOST, "rt") as lines:
        events = [
            json.loads(line)
            for line in lines
            if '"EventID":4697' in line or '"EventID":7045' in line
        ]
    installed = next(e for e in events if e["EventID"] == 4697)
    system = next(e for e in events if e["EventID"] == 7045)
    args = creates[0].args
    assert args["service_name"] == installed["ServiceName"]
    assert args["binary_path"] == installed["ServiceFileName"]
    assert args["service_type"] == service_type_name(int(installed["ServiceType"], 16))
    assert args["start_type"] == START_TYPES[int(installed["ServiceStartType"])]
    assert args["display_name"] == system["ServiceName"]
    assert "service_start_name" not in args  # NULL: the service runs as LocalSystem
    assert installed["ServiceAccount"] == "LocalSystem"
    operations = [call.operation for call in calls]
    assert operations.count("OpenSCManager2") == 2  # opnum 64, Windows 10's SCM open
    assert [c.args["service_name"] for c in calls if c.operation == "OpenServiceA"] == [
        installed["ServiceName"]
    ]


def test_psexec_operation_counts_match_suricata(shared_data: Path) -> None:
    """PsExec over ncacn_ip_tcp with Kerberos packet privacy: operations known, stubs sealed."""
    folder = shared_data / PSEXEC
    capture = next(folder.glob("*.pcap"))
    calls = capture_calls(tcp_streams(capture, 49155))
    expected = Counter()
    call_20 = None
    for check in yaml.safe_load((folder / "test.yaml").read_text())["checks"]:
        match = check["filter"]["match"]
        if "dcerpc.interfaces[0].procedure" in match:
            assert match["dcerpc.interfaces[0].service"] == "svcctl"
            expected[match["dcerpc.interfaces[0].procedure"]] = check["filter"]["count"]
        if match.get("dcerpc.call_id") is not None:
            call_20 = (match["dcerpc.call_id"], match["dcerpc.interfaces[0].uuid"])
    seen = Counter(call.operation for call in requests(calls))
    assert seen == expected
    assert all(call.encrypted and call.args is None for call in requests(calls))
    assert call_20 is not None
    binds = [call for call in calls if call.operation in ("Bind", "AlterContext")]
    assert {c["uuid"] for b in binds for c in b.args["contexts"]} >= {call_20[1]}
    assert [c.operation for c in requests(calls) if c.call_id == call_20[0]] == [
        "CloseServiceHandle"
    ]


def _spec_name(interface: str, opnum: int) -> str:
    """The MS-SAMR / MS-LSAD / MS-LSAT method name impacket gives this opnum."""
    tables = [samr.OPNUMS] if interface == "samr" else [lsad.OPNUMS, lsat.OPNUMS]
    return next(table[opnum][0].__name__ for table in tables if opnum in table)


def test_net_user_samr_lsarpc_match_tshark(shared_data: Path) -> None:
    """Windows' net user over NDR64: operations per frame as tshark's, names as the specs'."""
    folder = shared_data / NET_USER
    capture = next(folder.glob("*.pcap"))
    diagnostics = Diagnostics()
    calls = capture_calls(smb2_pipes(capture), diagnostics)
    rows = tshark_fields(
        capture,
        "dcerpc.pkt_type == 0",
        [
            "frame.number",
            "samr.opnum",
            "lsarpc.opnum",
            "samr.samr_LookupDomain.domain_name",
            "samr.samr_LookupNames.names",
            "samr.samr_Connect5.system_name",
            "samr.rid",
            "lsarpc.lsa_OpenPolicy2.system_name",
            "lsarpc.lsa.string",
            "dcerpc.nt.domain_sid",
        ],
    )
    by_frame = {call.request_frame: call for call in requests(calls)}
    assert len(by_frame) == len(rows) == 46  # test.yaml: 46 REQUEST records
    assert sum(call.operation == "Bind" for call in calls) == 5  # test.yaml: 5 BIND records
    decoded = Counter()
    for frame, samr_op, lsa_op, domain, names, system, rid, policy, string, sid in rows:
        call = by_frame[int(frame)]
        interface = "samr" if samr_op else "lsarpc"
        assert (call.interface, call.opnum) == (interface, int(samr_op or lsa_op))
        assert call.operation == _spec_name(interface, call.opnum)
        assert call.status == "STATUS_SUCCESS"
        args = call.args or {}
        for value, key in ((domain, "domain"), (system, "server"), (policy, "system_name")):
            if value:
                assert args[key] == value
                decoded[key] += 1
        if names:
            assert args["names"] == names.split(",")
            decoded["names"] += 1
        if string:
            assert args["names"] == string.split(",")
            decoded["names"] += 1
        if rid and call.operation == "SamrOpenUser":
            assert args["rid"] == int(rid)
            decoded["rid"] += 1
        if sid and call.operation == "SamrOpenDomain":
            assert args["domain_sid"] == sid.split()[0]
            decoded["domain_sid"] += 1
    assert decoded == {
        "domain": 3,
        "server": 4,
        "system_name": 1,
        "names": 3,
        "rid": 2,
        "domain_sid": 6,
    }
    assert not diagnostics.counts
