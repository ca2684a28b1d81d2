"""Scheduled-task calls (ITaskSchedulerService, atsvc) and the interface tables.

Samba serves neither task interface, so these requests are marshalled by impacket, the library
atexec.py and its kin send them with (an independent NDR encoder): the values handed to impacket
must come back out of RpcPipe.
"""

from __future__ import annotations

import pytest
from dcerpc_capture import bind_pdu
from impacket.dcerpc.v5 import (
    atsvc,
    drsuapi,
    even,
    even6,
    lsad,
    lsat,
    nrpc,
    par,
    rprn,
    rrp,
    samr,
    scmr,
    srvs,
    tsch,
    wkst,
)
from impacket.dcerpc.v5.dtypes import NULL
from impacket.dcerpc.v5.rpcrt import (
    MSRPC_REQUEST,
    PFC_FIRST_FRAG,
    PFC_LAST_FRAG,
    MSRPCRequestHeader,
)
from impacket.uuid import bin_to_string

from smbwatch.dcerpc.interfaces import INTERFACES
from smbwatch.dcerpc.pipe import RpcPipe
from smbwatch.diagnostics import Diagnostics

pytestmark = pytest.mark.unit

TASK_XML = """<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <Principals><Principal id="LocalSystem"><UserId>S-1-5-18</UserId>
    <RunLevel>HighestAvailable</RunLevel></Principal></Principals>
  <Settings><Hidden>true</Hidden></Settings>
  <Actions Context="LocalSystem"><Exec><Command>cmd.exe</Command>
    <Arguments>/C whoami &gt; %windir%\\Temp\\kYGrOXSf.tmp 2&gt;&amp;1</Arguments></Exec></Actions>
</Task>"""


def _request(call) -> bytes:
    """A single-fragment REQUEST PDU carrying one impacket-marshalled call."""
    stub = call.getData()
    header = MSRPCRequestHeader()
    header["type"] = MSRPC_REQUEST
    header["flags"] = PFC_FIRST_FRAG | PFC_LAST_FRAG
    header["call_id"] = 2
    header["ctx_id"] = 0
    header["op_num"] = call.opnum
    header["alloc_hint"] = len(stub)
    header["pduData"] = stub
    return header.get_packet()


def _call(uuid_version: tuple[str, str], call, diagnostics: Diagnostics | None = None):
    pipe = RpcPipe(diagnostics or Diagnostics(), "atsvc")
    pipe.feed(True, bind_pdu(*uuid_version), 1, 1)
    pipe.feed(True, _request(call), 2, 2)
    calls = [c for c in pipe.finish() if c.opnum is not None]
    (only,) = calls
    return only


def _tsch() -> tuple[str, str]:
    return ("86D35949-83C9-4044-B424-DB363231FD0C", "1.0")


def test_sch_rpc_register_task_as_atexec_sends_it() -> None:
    request = tsch.SchRpcRegisterTask()
    request["path"] = "\\kYGrOXSf\x00"
    request["xml"] = TASK_XML + "\x00"
    request["flags"] = tsch.TASK_CREATE
    request["sddl"] = NULL
    request["logonType"] = tsch.TASK_LOGON_NONE
    request["cCreds"] = 0
    request["pCreds"] = NULL
    call = _call(_tsch(), request)
    assert (call.interface, call.operation) == ("ITaskSchedulerService", "SchRpcRegisterTask")
    args = call.args
    assert args["path"] == "\\kYGrOXSf"
    assert args["command"] == "cmd.exe"
    assert args["arguments"] == "/C whoami > %windir%\\Temp\\kYGrOXSf.tmp 2>&1"
    assert (args["user_id"], args["run_level"], args["hidden"]) == (
        "S-1-5-18",
        "HighestAvailable",
        "true",
    )
    assert args["flags"] == ["TASK_CREATE"] and args["logon_type"] == "TASK_LOGON_NONE"


def test_task_xml_entities_are_refused() -> None:
    """A billion-laughs DOCTYPE is refused before any expansion; the call keeps its path."""
    laughs = '<!DOCTYPE t [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    request = tsch.SchRpcRegisterTask()
    request["path"] = "\\lol\x00"
    request["xml"] = (
        laughs + "<Task><Actions><Exec><Command>&b;</Command></Exec></Actions></Task>\x00"
    )
    request["flags"] = tsch.TASK_CREATE
    request["sddl"] = NULL
    request["logonType"] = tsch.TASK_LOGON_NONE
    request["cCreds"] = 0
    request["pCreds"] = NULL
    args = _call(_tsch(), request).args
    assert args["path"] == "\\lol" and "command" not in args
    assert "DOCTYPE" in args["xml_error"]


def test_sch_rpc_run_and_delete() -> None:
    run = tsch.SchRpcRun()
    run["path"] = "\\kYGrOXSf\x00"
    run["cArgs"] = 0
    run["pArgs"] = NULL
    run["flags"] = tsch.TASK_RUN_IGNORE_CONSTRAINTS
    run["sessionId"] = 0
    run["user"] = NULL
    call = _call(_tsch(), run)
    assert (call.operation, call.args["path"]) == ("SchRpcRun", "\\kYGrOXSf")
    delete = tsch.SchRpcDelete()
    delete["path"] = "\\kYGrOXSf\x00"
    delete["flags"] = 0
    call = _call(_tsch(), delete)
    assert (call.operation, call.args) == ("SchRpcDelete", {"path": "\\kYGrOXSf"})


def test_netr_job_add() -> None:
    request = atsvc.NetrJobAdd()
    request["ServerName"] = NULL
    request["pAtInfo"]["JobTime"] = (13 * 3600 + 37 * 60) * 1000
    request["pAtInfo"]["DaysOfMonth"] = 0b101  # the 1st and the 3rd
    request["pAtInfo"]["DaysOfWeek"] = 0b1000001  # Monday and Sunday
    request["pAtInfo"]["Flags"] = 0x10  # JOB_NONINTERACTIVE (MS-TSCH 2.3.4)
    request["pAtInfo"]["Command"] = "cmd.exe /c net user x P@ss /add\x00"
    call = _call(("1FF70682-0A51-30E8-076D-740BE8CEE98B", "1.0"), request)
    assert (call.interface, call.operation) == ("atsvc", "NetrJobAdd")
    assert call.args == {
        "command": "cmd.exe /c net user x P@ss /add",
        "time_of_day": "13:37:00",
        "days_of_month": [1, 3],
        "days_of_week": ["Monday", "Sunday"],
        "flags": ["JOB_NONINTERACTIVE"],
    }


def test_interface_tables_agree_with_impacket() -> None:
    """Every UUID and every opnum impacket knows names the same operation here (R dropped
    for svcctl as Zeek/Wireshark do)."""
    modules = [
        scmr,
        atsvc,
        tsch,
        rrp,
        srvs,
        wkst,
        samr,
        lsad,
        lsat,
        nrpc,
        rprn,
        par,
        drsuapi,
        even,
        even6,
    ]
    checked = 0
    for module in modules:
        uuid = next(value for key, value in vars(module).items() if key.startswith("MSRPC_UUID"))
        interface = INTERFACES[bin_to_string(uuid[:16]).lower()]
        for opnum, (request, _) in module.OPNUMS.items():
            name = request.__name__
            if module is scmr:
                name = name[1:]
            assert interface.operation(opnum) == name, (interface.name, opnum)
            checked += 1
    assert checked == sum(len(module.OPNUMS) for module in modules) > 300
