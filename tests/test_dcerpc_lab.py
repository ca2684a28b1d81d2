"""RpcPipe on traffic made here: Samba's rpcclient and ``net rpc`` against smbd (tests/lab.py),
captured, and every decoded argument checked against tshark's dissection of the same capture."""

from __future__ import annotations

import sys
from pathlib import Path

import dcerpc_impacket_client as impacket_client
import pytest
from dcerpc_capture import capture_calls, rpc_calls, smb2_pipes
from lab import SambaLab
from oracle import cut_capture, tshark_fields

from smbwatch.diagnostics import Diagnostics
from smbwatch.pipeline import capture_events

pytestmark = pytest.mark.lab

KEY = "HKLM\\Software\\smbwatch"
COMMAND = "cmd.exe /c calc.exe"
SERVICE = ("smbwatchsvc", "smbwatch svc", "C:\\Windows\\Temp\\evil.exe")


@pytest.fixture(scope="module")
def lab_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One capture of srvsvc, winreg and svcctl calls made by Samba's own clients."""
    path = tmp_path_factory.mktemp("dcerpc_lab") / "rpc.pcap"
    with SambaLab() as lab, lab.capture(path):
        lab.rpcclient(["netshareenumall", "netsharegetinfo data"])
        lab.net_rpc(["registry", "createkey", KEY])
        lab.net_rpc(["registry", "setvalue", KEY, "Run", "sz", COMMAND])
        lab.net_rpc(["registry", "getvalue", KEY, "Run"])
        lab.net_rpc(["registry", "deletevalue", KEY, "Run"])
        lab.net_rpc(["registry", "deletekey", KEY])
        # Samba refuses CreateServiceW, but the request is on the wire.
        lab.net_rpc(["service", "create", *SERVICE], check=False)
    return path


@pytest.fixture(scope="module")
def calls(lab_capture: Path):
    diagnostics = Diagnostics()
    found = [
        call
        for call in capture_calls(smb2_pipes(lab_capture), diagnostics)
        if call.opnum is not None
    ]
    assert not diagnostics.counts
    return {call.request_frame: call for call in found}


def _rows(capture: Path, display_filter: str, fields: list[str]) -> list[list[str]]:
    rows = tshark_fields(
        capture, f"({display_filter}) && dcerpc.pkt_type == 0", ["frame.number", *fields]
    )
    assert rows, f"tshark found no {display_filter}"
    return rows


def test_srvsvc_share_calls_match_tshark(lab_capture: Path, calls) -> None:
    enum_rows = _rows(
        lab_capture,
        "srvsvc.opnum == 15",
        ["srvsvc.srvsvc_NetShareEnumAll.level", "srvsvc.srvsvc_NetShareEnumAll.server_unc"],
    )
    ((frame, level, server),) = enum_rows
    call = calls[int(frame)]
    assert (call.operation, call.args["level"], call.args["server"]) == (
        "NetrShareEnum",
        int(level),
        server,
    )
    # The share names the server answered with, as tshark reads them from the response.
    names = tshark_fields(
        lab_capture,
        "srvsvc.opnum == 15 && dcerpc.pkt_type == 2",
        ["srvsvc.srvsvc_NetShareInfo2.name"],
    )
    assert call.args["shares"] == names[0][0].split(",")
    assert {"ADMIN$", "IPC$", "data"} <= set(call.args["shares"])

    ((frame, share, level),) = _rows(
        lab_capture,
        "srvsvc.opnum == 16",
        ["srvsvc.srvsvc_NetShareGetInfo.share_name", "srvsvc.srvsvc_NetShareGetInfo.level"],
    )
    call = calls[int(frame)]
    paths = tshark_fields(
        lab_capture,
        "srvsvc.opnum == 16 && dcerpc.pkt_type == 2",
        ["srvsvc.srvsvc_NetShareInfo502.path"],
    )
    assert (call.operation, call.args["share_name"], call.args["level"]) == (
        "NetrShareGetInfo",
        share,
        int(level),
    )
    assert call.args["path"] == paths[0][0] and call.args["path"].endswith("\\data")
    assert call.status == "ERROR_SUCCESS"


def test_winreg_calls_match_tshark(lab_capture: Path, calls) -> None:
    created = _rows(lab_capture, "winreg.opnum == 6", ["winreg.winreg_CreateKey.name"])
    opened = _rows(lab_capture, "winreg.opnum == 15", ["winreg.winreg_OpenKey.keyname"])
    deleted = _rows(lab_capture, "winreg.opnum == 7", ["winreg.winreg_DeleteKey.key"])
    for frame, sub_key in created + opened + deleted:
        call = calls[int(frame)]
        assert call.args["sub_key"] == sub_key
        assert call.args["path"] == f"HKLM\\{sub_key}" == KEY
    ((frame, name, size, data),) = _rows(
        lab_capture,
        "winreg.opnum == 22",
        [
            "winreg.winreg_SetValue.name",
            "winreg.winreg_SetValue.size",
            "winreg.winreg_SetValue.data",
        ],
    )
    call = calls[int(frame)]
    raw = bytes(int(byte) for byte in data.split(","))
    assert call.operation == "BaseRegSetValue" and call.status == "ERROR_SUCCESS"
    assert call.args["key"] == KEY  # through the handles of OpenLocalMachine and BaseRegOpenKey
    assert (call.args["value_name"], call.args["value_type"]) == (name, "REG_SZ")
    assert call.args["data"] == raw.decode("utf-16-le").rstrip("\x00") == COMMAND
    assert call.args["data_size"] == int(size)
    for frame, value in _rows(
        lab_capture, "winreg.opnum == 8", ["winreg.winreg_DeleteValue.value"]
    ):
        assert (calls[int(frame)].args["key"], calls[int(frame)].args["value_name"]) == (KEY, value)
    hives = [call for call in calls.values() if call.operation == "OpenLocalMachine"]
    assert len(hives) == len(_rows(lab_capture, "winreg.opnum == 2", [])) >= 5
    assert all(call.args["hive"] == "HKLM" for call in hives)


def test_svcctl_create_service_matches_tshark(lab_capture: Path, calls) -> None:
    ((frame, name, display, path, start, kind, error),) = _rows(
        lab_capture,
        "svcctl.opnum == 12",
        [
            "svcctl.servicename",
            "svcctl.displayname",
            "svcctl.binarypathname",
            "svcctl.service_start_type",
            "svcctl.service_type",
            "svcctl.service_error_control",
        ],
    )
    call = calls[int(frame)]
    assert (
        (call.args["service_name"], call.args["display_name"], call.args["binary_path"])
        == (name, display, path)
        == SERVICE
    )
    assert (int(start, 0), int(kind, 0), int(error, 0)) == (3, 0x10, 1)
    assert (call.args["start_type"], call.args["service_type"], call.args["error_control"]) == (
        "SERVICE_DEMAND_START",
        "SERVICE_WIN32_OWN_PROCESS",
        "SERVICE_ERROR_NORMAL",
    )
    assert call.status == "nca_s_op_rng_error"  # Samba's FAULT: it does not create services


@pytest.fixture(scope="module")
def impacket_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """impacket (smbexec/secretsdump-style calls) against the same Samba, captured."""
    path = tmp_path_factory.mktemp("dcerpc_impacket") / "impacket.pcap"
    with SambaLab() as lab, lab.capture(path):
        script = Path(impacket_client.__file__)
        lab.run([sys.executable, str(script), lab.server_ip, lab.user, lab.password])
    return path


def test_impacket_attack_calls_match_tshark(impacket_capture: Path) -> None:
    diagnostics = Diagnostics()
    calls = {c.request_frame: c for c in capture_calls(smb2_pipes(impacket_capture), diagnostics)}
    assert not diagnostics.counts
    ((frame, name, path),) = _rows(
        impacket_capture, "svcctl.opnum == 12", ["svcctl.servicename", "svcctl.binarypathname"]
    )
    create = calls[int(frame)]
    assert (create.args["service_name"], create.args["binary_path"]) == (name, path)
    assert (name, path) == (impacket_client.SERVICE_NAME, impacket_client.BINARY_PATH)
    ((frame, filename),) = _rows(
        impacket_capture, "winreg.opnum == 20", ["winreg.winreg_SaveKey.filename"]
    )
    save = calls[int(frame)]
    assert (save.operation, save.args) == ("BaseRegSaveKey", {"key": "HKLM", "file": filename})
    assert filename == impacket_client.SAVE_FILE and save.status == "ERROR_BAD_PATHNAME"
    ((frame, level),) = _rows(
        impacket_capture, "srvsvc.opnum == 15", ["srvsvc.srvsvc_NetShareEnumAll.level"]
    )
    names = tshark_fields(
        impacket_capture,
        "srvsvc.opnum == 15 && dcerpc.pkt_type == 2",
        ["srvsvc.srvsvc_NetShareInfo1.name"],
    )
    enum = calls[int(frame)]
    assert (enum.args["level"], enum.args["shares"]) == (int(level), names[0][0].split(","))
    ((frame,),) = _rows(impacket_capture, "srvsvc.opnum == 12", [])
    assert (calls[int(frame)].operation, calls[int(frame)].status) == (
        "NetrSessionEnum",
        "ERROR_ACCESS_DENIED",
    )


@pytest.mark.parametrize(
    ("traffic", "bound_by", "operations"),
    [
        ("lab_capture", "ioctl", {"NetrShareEnum", "NetrShareGetInfo"}),  # rpcclient
        ("impacket_capture", "write", {"OpenLocalMachine", "BaseRegSaveKey"}),
    ],
)
def test_pipes_opened_after_the_capture_began_are_still_read(
    traffic: str,
    bound_by: str,
    operations: set[str],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The capture cut to begin right after the client's first TREE_CONNECT to IPC$ was
    answered: its CREATE of a pipe comes on a tree never seen connected. The BIND written to
    it (by WRITE or in an FSCTL_PIPE_TRANSCEIVE) makes it a pipe, and every call on it says
    what the whole capture says."""
    capture: Path = request.getfixturevalue(traffic)
    connects = tshark_fields(
        capture,
        "smb2.cmd == 3 && smb2.flags.response == 1 && smb2.share_type == 0x02",
        ["frame.number", "tcp.dstport"],
    )
    frame, client_port = (int(value) for value in connects[0])
    cut = tmp_path / "cut.pcap"
    cut_capture(capture, cut, frame)
    whole = rpc_calls(capture, client_port)
    assert whole[0]["rpc_operation"] == "Bind"
    assert operations <= {call["rpc_operation"] for call in whole}
    assert rpc_calls(cut, client_port, frame) == whole
    events = [e for e in capture_events(str(cut), Diagnostics()) if e.src_port == client_port]
    opens = [e for e in events if e.action == "open"]
    assert opens and all(e.share is None and e.pipe is None for e in opens)  # could not tell
    calls = [e for e in events if e.action == "rpc_call"]
    pipes = {e.pipe for e in calls}
    assert None not in pipes and pipes == {e.path for e in calls}  # named as they were opened
    binds = {e.source_ref for e in calls if e.rpc_operation == "Bind"}
    assert {e.action for e in events if e.source_ref in binds and e.command} == {bound_by}
