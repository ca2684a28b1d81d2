"""Lateral movement and credential theft made here, captured and detected: impacket's requests
(tests/dcerpc_attack_client.py) to Samba for what it serves (svcctl, winreg, srvsvc, samr,
netdfs) and to a listener of the test's own for what it does not (netlogon, drsuapi, DCOM
activation, IWbemServices, spoolss, EFSRPC; tests/dcerpc_listener.py), in the lab's namespaces.

Every decoded argument is checked against tshark's dissection of the same capture where tshark
decodes it, else against what the client sent; every alert against the frames tshark finds.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import dcerpc_attack_client as client
import dcerpc_listener
import pytest
from dcerpc_capture import tcp_streams
from detect_support import tshark_frames
from lab import SambaLab, pe_bytes
from oracle import tshark_fields

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.interfaces import interface_for
from smbwatch.dcerpc.ndr import NdrError, NdrReader
from smbwatch.dcerpc.pdu import BIND, HEADER_SIZE, REQUEST, parse_bind, parse_call, parse_header
from smbwatch.dcerpc.pipe import DECODERS
from smbwatch.detect.engine import detect
from smbwatch.detect.sigma import load_rules
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent
from smbwatch.pipeline import capture_events

pytestmark = pytest.mark.lab

RULES = load_rules()
TCP_FILTER = "tcp port 135 or tcp portrange 49700-49710"
NOTES = b"minutes of the meeting\n" * 40


@dataclass
class Captures:
    tcp: Path  # to the listener
    smb: Path  # to Samba
    copy: Path  # a plain file copy to a normal share
    client_ip: str
    server_ip: str


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> Captures:
    folder = tmp_path_factory.mktemp("attacks")
    listener = [sys.executable, dcerpc_listener.__file__]
    script = [sys.executable, client.__file__]
    with SambaLab() as lab:
        ports = [str(port) for port in client.PORTS.values()]
        deny = str(client.ZEROLOGON_ATTEMPTS - 1)
        with (
            lab.capture(folder / "tcp.pcap", bpf=TCP_FILTER),
            lab.serve([*listener, lab.server_ip, *ports, "--deny", deny]),
        ):
            lab.run([*script, "tcp", lab.server_ip, lab.client_ip])
        (lab.client_dir / "payload.dll").write_bytes(pe_bytes("hijack"))
        with lab.capture(folder / "smb.pcap"):
            credentials = [lab.server_ip, lab.user, lab.password]
            dll = str(lab.client_dir / "payload.dll")
            lab.run([*script, "smb", *credentials, lab.client_ip, dll])
        (lab.client_dir / "notes.txt").write_bytes(NOTES)
        with lab.capture(folder / "copy.pcap"):
            lab.smbclient("data", ["put notes.txt"])
        return Captures(
            folder / "tcp.pcap",
            folder / "smb.pcap",
            folder / "copy.pcap",
            lab.client_ip,
            lab.server_ip,
        )


def events_of(capture: Path) -> list[SmbEvent]:
    diagnostics = Diagnostics()
    events = list(capture_events(str(capture), diagnostics))
    assert not diagnostics.counts
    return events


def calls_at(events: list[SmbEvent], capture: Path, display_filter: str) -> list[SmbEvent]:
    """The decoded calls of the requests tshark finds with ``display_filter``, in its order."""
    by_frame = {
        e.source_ref: e for e in events if e.action == "rpc_call" and e.rpc_opnum is not None
    }
    frames = tshark_frames(capture, f"({display_filter}) && dcerpc.pkt_type == 0")
    assert frames, display_filter
    return [by_frame[frame] for frame in frames]


def alerts_titled(alerts: list, title: str) -> list:
    return [alert for alert in alerts if alert.title == title]


# --- what tshark decodes ------------------------------------------------------------------------
def test_netlogon_arguments_match_tshark(captures: Captures) -> None:
    events = events_of(captures.tcp)
    request = "netlogon.opnum == 15 || netlogon.opnum == 26"
    fields = ["netlogon.acct_name", "netlogon.computer_name", "netlogon.clientcred"]
    expected = tshark_fields(captures.tcp, f"({request}) && dcerpc.pkt_type == 0", fields)
    calls = calls_at(events, captures.tcp, request)
    assert len(calls) == client.ZEROLOGON_ATTEMPTS + 1
    got = [
        [c.rpc_args["account_name"], c.rpc_args["computer_name"], c.rpc_args["client_credential"]]
        for c in calls
    ]
    assert got == [[name, computer, cred.replace(":", "")] for name, computer, cred in expected]
    assert got[-1][2] == client.GENUINE_CREDENTIAL.hex()
    statuses = [c.rpc_status for c in calls]
    assert (
        statuses
        == ["STATUS_ACCESS_DENIED"] * (client.ZEROLOGON_ATTEMPTS - 1) + ["STATUS_SUCCESS"] * 2
    )
    # tshark cannot read NetrServerPasswordSet2 (Malformed Packet): the values sent are the oracle
    (reset,) = calls_at(events, captures.tcp, "netlogon.opnum == 30")
    assert reset.rpc_args == {
        "account_name": client.DC_ACCOUNT,
        "secure_channel_type": "ServerSecureChannel",
        "computer_name": client.ATTACKER,
        "authenticator_credential": "0000000000000000",
        "authenticator_timestamp": 0,
        "new_password_zero": True,
    }


def test_drsuapi_dcom_spoolss_efsrpc_arguments_match_tshark(captures: Captures) -> None:
    events = events_of(captures.tcp)
    (bind,) = calls_at(events, captures.tcp, "drsuapi.opnum == 0")
    ((bind_guid,),) = tshark_fields(
        captures.tcp, "drsuapi.opnum == 0 && dcerpc.pkt_type == 0", ["drsuapi.DsBind.bind_guid"]
    )
    assert bind.rpc_args == {"client_dsa": bind_guid, "client_dsa_name": "NTDSAPI_CLIENT_GUID"}
    (changes,) = calls_at(events, captures.tcp, "drsuapi.opnum == 3")
    ((destination, naming_context, operation, flags),) = tshark_fields(
        captures.tcp,
        "drsuapi.opnum == 3 && dcerpc.pkt_type == 0",
        [
            "drsuapi.DsGetNCChangesRequest8.guid1",
            "drsuapi.DsReplicaSyncRequest1Info.nc_dn",
            "drsuapi.DsGetNCChangesRequest8.unknown4",
            "drsuapi.DsGetNCChangesRequest8.unknown1",
        ],
    )
    assert changes.rpc_args["destination_dsa"] == destination
    assert changes.rpc_args["naming_context"] == naming_context == client.KRBTGT_DN
    assert (int(operation), changes.rpc_args["extended_operation"]) == (6, "EXOP_REPL_OBJ")
    assert int(changes.rpc_args["flags"], 16) == int(flags)
    activations = calls_at(events, captures.tcp, "isystemactivator.opnum == 4")
    clsids = tshark_fields(
        captures.tcp,
        "isystemactivator.opnum == 4 && dcerpc.pkt_type == 0",
        ["isystemactivator.properties.instninfo.clsid"],
    )
    assert [a.rpc_args["clsid"] for a in activations] == [row[0] for row in clsids]
    assert [a.rpc_args["class_name"] for a in activations] == [
        "MMC20.Application",
        "WbemLevel1Login",
    ]
    assert activations[1].rpc_args["interfaces"] == ["IWbemLevel1Login"]
    (notify,) = calls_at(events, captures.tcp, "spoolss.opnum == 65")
    ((local_machine,),) = tshark_fields(
        captures.tcp, "spoolss.opnum == 65 && dcerpc.pkt_type == 0", ["spoolss.servername"]
    )
    assert notify.rpc_args["local_machine"] == local_machine == f"\\\\{captures.client_ip}"
    (opened,) = calls_at(events, captures.tcp, "efs.opnum == 0")
    ((file_name,),) = tshark_fields(
        captures.tcp, "efs.opnum == 0 && dcerpc.pkt_type == 0", ["efs.EfsRpcOpenFileRaw.FileName"]
    )
    assert opened.rpc_args == {"file_name": file_name}
    assert file_name == client.unc_of(captures.client_ip)


def test_wmi_arguments_are_what_the_client_sent(captures: Captures) -> None:
    """tshark has no IWbemServices dissector: the class, method and query sent are the oracle."""
    events = events_of(captures.tcp)
    wmi = [e for e in events if e.rpc_interface == "IWbemServices" and e.rpc_opnum is not None]
    assert [(e.rpc_operation, e.rpc_args) for e in wmi] == [
        ("ExecMethod", {"object_path": client.WMI_CLASS, "method": client.WMI_METHOD}),
        ("ExecQuery", {"query_language": "WQL", "query": client.WMI_QUERY}),
    ]
    assert all(e.dst_port == client.PORTS["wbem"] for e in wmi)


def test_svcctl_winreg_netdfs_arguments_match_tshark(captures: Captures) -> None:
    events = events_of(captures.smb)
    (stop,) = calls_at(events, captures.smb, "svcctl.opnum == 1")
    # tshark shows ControlService's stub undecoded: the handle (20 bytes), then dwControl
    ((stub,),) = tshark_fields(
        captures.smb, "svcctl.opnum == 1 && dcerpc.pkt_type == 0", ["dcerpc.stub_data"]
    )
    control = int.from_bytes(bytes.fromhex(stub.replace(":", ""))[20:24], "little")
    assert (control, stop.rpc_args["control"]) == (1, "SERVICE_CONTROL_STOP")
    (start,) = calls_at(events, captures.smb, "svcctl.opnum == 19")
    ((opened_name,),) = tshark_fields(
        captures.smb, "svcctl.opnum == 16 && dcerpc.pkt_type == 0", ["svcctl.servicename"]
    )
    assert stop.service_name == start.service_name == opened_name == client.HIJACKED_SERVICE
    set_values = calls_at(events, captures.smb, "winreg.opnum == 22")
    names = tshark_fields(
        captures.smb, "winreg.opnum == 22 && dcerpc.pkt_type == 0", ["winreg.winreg_SetValue.name"]
    )
    assert [c.rpc_args["value_name"] for c in set_values] == [row[0] for row in names]
    run = set_values[0]
    assert run.rpc_args["key"] == f"HKLM\\{client.RUN_KEY}"
    assert (run.rpc_args["value_name"], run.rpc_args["data"]) == (client.RUN_VALUE, client.RUN_DATA)
    (dfs,) = calls_at(events, captures.smb, "netdfs.opnum == 13")
    ((server, share, flags),) = tshark_fields(
        captures.smb,
        "netdfs.opnum == 13 && dcerpc.pkt_type == 0",
        [
            "netdfs.dfs_RemoveStdRoot.servername",
            "netdfs.dfs_RemoveStdRoot.rootshare",
            "netdfs.dfs_RemoveStdRoot.flags",
        ],
    )
    assert dfs.rpc_args == {"server_name": server, "root_share": share, "flags": int(flags, 0)}
    assert server == captures.client_ip


# --- what fires --------------------------------------------------------------------------------
def test_zerologon_fires_on_the_zero_credentials_only(captures: Captures) -> None:
    alerts = detect(events_of(captures.tcp), RULES)
    (burst,) = alerts_titled(alerts, "Zerologon: Burst of Zero-Credential Netlogon Authentications")
    zero = "netlogon.opnum == 15 && netlogon.clientcred == 00:00:00:00:00:00:00:00"
    attempts = tshark_frames(captures.tcp, f"{zero} && dcerpc.pkt_type == 0")
    assert [e["source_ref"] for e in burst.evidence] == attempts
    assert burst.count == client.ZEROLOGON_ATTEMPTS and burst.risk_score >= 80
    assert (burst.src_ip, burst.dst_ip) == (captures.client_ip, captures.server_ip)
    assert "T1210" in burst.attack and client.DC_ACCOUNT in burst.message
    (accepted,) = alerts_titled(
        alerts, "Zerologon: Secure Channel Established With a Zero Credential"
    )
    assert [e["source_ref"] for e in accepted.evidence] == attempts[-1:]
    (reset,) = alerts_titled(alerts, "Zerologon: Machine Account Password Reset Through Netlogon")
    assert reset.risk_score == 100
    (genuine,) = tshark_frames(captures.tcp, "netlogon.opnum == 26 && dcerpc.pkt_type == 0")
    assert all(genuine not in [e["source_ref"] for e in a.evidence] for a in alerts)


def test_dcsync_dcom_wmi_and_coercion_fire(captures: Captures) -> None:
    alerts = detect(events_of(captures.tcp), RULES)
    (dcsync,) = [a for a in alerts if a.title.startswith("DCSync")]
    assert dcsync.risk_score >= 80 and dcsync.attack == ["T1003.006"]
    assert client.KRBTGT_DN in dcsync.message and dcsync.src_ip == captures.client_ip
    (mmc,) = alerts_titled(alerts, "Remote DCOM Activation of a Command-Running Class")
    assert "MMC20.Application" in mmc.message and "T1021.003" in mmc.attack
    (session,) = alerts_titled(
        alerts, "Remote WMI Session Opened (DCOM Activation of WbemLevel1Login)"
    )
    (method,) = alerts_titled(alerts, "Remote WMI Method Executed (IWbemServices ExecMethod)")
    assert "Win32_Process.Create" in method.message and method.risk_score >= 50
    assert session.attack == method.attack == ["T1047"]
    (query,) = alerts_titled(alerts, "Remote WMI Query (IWbemServices ExecQuery)")
    assert query.risk_score < 50  # reconnaissance
    unc = client.unc_of(captures.client_ip)
    (petit,) = alerts_titled(alerts, "Authentication Coercion Through EFSRPC (PetitPotam)")
    (printer,) = alerts_titled(
        alerts, "Authentication Coercion Through the Print Spooler (PrinterBug)"
    )
    assert unc in petit.message and f"\\\\{captures.client_ip}" in printer.message
    assert all(a.attack == ["T1187"] and a.risk_score >= 50 for a in (petit, printer))


def test_service_hijack_registry_enumeration_and_dfscoerce_on_samba(captures: Captures) -> None:
    alerts = detect(events_of(captures.smb), RULES)
    (hijack,) = [a for a in alerts if a.title.endswith("(Hijack)")]
    assert (hijack.path, hijack.service_name) == (client.HIJACK_DLL, client.HIJACKED_SERVICE)
    assert hijack.risk_score >= 50 and "T1574" in hijack.attack
    writes = tshark_frames(captures.smb, "smb2.cmd == 9 && smb2.flags.response == 0")
    frames = [e["source_ref"] for e in hijack.evidence]
    stop = tshark_frames(captures.smb, "svcctl.opnum == 1 && dcerpc.pkt_type == 0")
    start = tshark_frames(captures.smb, "svcctl.opnum == 19 && dcerpc.pkt_type == 0")
    assert frames == [writes[0], *stop, *start]  # the DLL write, the stop, the start
    (started,) = alerts_titled(alerts, "Remote Service Started Through svcctl")
    (stopped,) = alerts_titled(alerts, "Remote Service Stopped or Paused Through svcctl")
    assert started.service_name == stopped.service_name == client.HIJACKED_SERVICE
    assert client.HIJACKED_SERVICE in started.message and started.risk_score >= 50
    registry = alerts_titled(alerts, "Remote Registry Value Set in an Autostart Location")
    values = {a.group["rpc_args.value_name"] for a in registry}
    assert values == {client.RUN_VALUE, client.WINLOGON_VALUE}
    assert any(client.RUN_DATA in a.message for a in registry)
    (shares,) = alerts_titled(alerts, "Share and Session Enumeration Burst")
    assert shares.count == client.SHARE_ENUMERATIONS and shares.risk_score < 50
    (accounts,) = alerts_titled(alerts, "Account and Group Enumeration Burst")
    assert accounts.count >= client.ACCOUNT_ENUMERATIONS and accounts.risk_score < 50
    (dfs,) = alerts_titled(
        alerts, "Authentication Coercion Through DFS Namespace Management (DFSCoerce)"
    )
    assert captures.client_ip in dfs.message


def test_a_plain_file_copy_raises_nothing_above_informational(captures: Captures) -> None:
    alerts = detect(events_of(captures.copy), RULES)
    assert alerts, "the copy is a write: the hunting rule sees it"
    assert {a.severity for a in alerts} == {"informational"}
    assert max(a.risk_score for a in alerts) < 25


# --- negatives: the same calls from the host itself or from a domain controller -------------------
def test_localhost_and_domain_controllers_are_not_high_risk(captures: Captures) -> None:
    events = events_of(captures.tcp) + events_of(captures.smb)
    risky = {a.title for a in detect(events, RULES) if a.risk_score >= 50}
    assert any(t.startswith("DCSync") for t in risky)
    local = [e.copy(src_ip=e.dst_ip) if e.src_ip == captures.client_ip else e for e in events]
    local_risky = {a.title for a in detect(local, RULES) if a.risk_score >= 50}
    for excluded in ("DCSync", "Remote Service Started", "Remote WMI Method", "Remote DCOM"):
        assert not any(t.startswith(excluded) for t in local_risky), excluded
    # The client answers netlogon itself (a domain controller replicating from another one).
    netlogon = next(e for e in events if e.rpc_interface == "netlogon" and e.rpc_opnum == 4)
    answered = netlogon.copy(src_ip=captures.server_ip, dst_ip=captures.client_ip)
    replicating = {a.title for a in detect([*events, answered], RULES)}
    assert not any(t.startswith("DCSync") for t in replicating)
    assert "Remote Service Started Through svcctl" not in replicating
    assert any(t.startswith("Zerologon") for t in replicating)  # never excused


# --- hostile stubs: the new decoders on the real requests, cut and mutated ------------------------
def request_stubs(capture: Path) -> list[tuple[str, int, bytes]]:
    """(interface, opnum, stub) of every request with a decoder, from each TCP stream's PDUs."""
    stubs = []
    for stream in tcp_streams_of(capture):
        contexts: dict[int, str] = {}
        for chunk in stream.chunks:
            if not chunk.from_client:
                continue
            data = chunk.data
            while len(data) >= HEADER_SIZE:
                header = parse_header(data, 0)
                pdu, data = data[: header.frag_length], data[header.frag_length :]
                if header.ptype == BIND:
                    for element in parse_bind(pdu, header):
                        interface = interface_for(element.abstract.uuid)
                        contexts[element.context_id] = interface.name if interface else ""
                elif header.ptype == REQUEST:
                    call = parse_call(pdu, header)
                    name = contexts.get(call.context_id, "")
                    if name in DECODERS and call.opnum in DECODERS[name].REQUESTS:
                        stubs.append((name, call.opnum, call.stub))
    return stubs


def tcp_streams_of(capture: Path):
    return [s for port in client.PORTS.values() for s in tcp_streams(capture, port)]


def test_new_decoders_on_cut_and_mutated_stubs(captures: Captures) -> None:
    stubs = request_stubs(captures.tcp)
    assert {name for name, _, _ in stubs} >= {
        "netlogon",
        "drsuapi",
        "IRemoteSCMActivator",
        "IWbemServices",
        "spoolss",
        "efsrpc",
    }
    rng = random.Random(14)
    for name, opnum, stub in stubs:
        decode = DECODERS[name].REQUESTS[opnum]
        variants = [stub[:cut] for cut in range(len(stub))]
        for _ in range(200):
            mutated = bytearray(stub)
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            variants.append(bytes(mutated))
        for variant in variants:
            try:
                args = decode(NdrReader(variant), HandleNames())
            except NdrError:
                continue
            assert isinstance(args, dict)
            json.dumps(args)  # what is decoded can be written
