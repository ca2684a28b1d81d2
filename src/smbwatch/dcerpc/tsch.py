"""ITaskSchedulerService (MS-TSCH 3.2.5.4) arguments: remote scheduled tasks (T1053.005).

SchRpcRegisterTask carries the whole task as XML; its command lines and principal are read by
``smbwatch.task_xml`` (the same reader as for the host's 4698/4702 records).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrReader
from smbwatch.task_xml import TaskXmlError, parse_task_xml

Args = dict[str, Any]

CREATION_FLAGS: Final = (
    (0x1, "TASK_VALIDATE_ONLY"),
    (0x2, "TASK_CREATE"),
    (0x4, "TASK_UPDATE"),
    (0x8, "TASK_DISABLE"),
    (0x10, "TASK_DONT_ADD_PRINCIPAL_ACE"),
    (0x20, "TASK_IGNORE_REGISTRATION_TRIGGERS"),
)
LOGON_TYPES: Final = {
    0: "TASK_LOGON_NONE",
    1: "TASK_LOGON_PASSWORD",
    2: "TASK_LOGON_S4U",
    3: "TASK_LOGON_INTERACTIVE_TOKEN",
    4: "TASK_LOGON_GROUP",
    5: "TASK_LOGON_SERVICE_ACCOUNT",
    6: "TASK_LOGON_INTERACTIVE_TOKEN_OR_PASSWORD",
}


def _flags(value: int) -> list[str]:
    return [name for bit, name in CREATION_FLAGS if value & bit]


def _register_task(r: NdrReader, handles: HandleNames) -> Args:
    """SchRpcRegisterTask (3.2.5.4.2): the task path and what its XML runs, as whom."""
    path = r.unique_wstr()
    xml = r.wstr()
    args: Args = {"path": path, "flags": _flags(r.u32())}
    sddl = r.unique_wstr()
    if sddl:
        args["sddl"] = sddl
    logon_type = r.u32()
    args["logon_type"] = LOGON_TYPES.get(logon_type, f"0x{logon_type:X}")
    try:
        args.update(parse_task_xml(xml))
    except TaskXmlError as error:
        args["xml_error"] = str(error)
    args["xml_length"] = len(xml)
    return args


def _path(r: NdrReader, handles: HandleNames) -> Args:
    """Calls whose first parameter is the task or folder path ([in, string] wchar_t*)."""
    return {"path": r.wstr()}


def _unique_path(r: NdrReader, handles: HandleNames) -> Args:
    """SchRpcEnumInstances, SchRpcStop: a [unique] path (NULL: all tasks)."""
    return {"path": r.unique_wstr()}


def _run(r: NdrReader, handles: HandleNames) -> Args:
    """SchRpcRun (3.2.5.4.13): the task and the arguments it is run with, as which user."""
    args: Args = {"path": r.wstr()}
    count = r.u32()
    if r.pointer():
        size = r.array_count(r.count())
        referents = [r.pointer() for _ in range(size)]
        args["arguments"] = [r.wstr() for referent in referents if referent]
        if size != count:
            args["argument_count"] = count
    args["flags"] = r.u32()
    args["session_id"] = r.u32()
    user = r.unique_wstr()
    if user is not None:
        args["user"] = user
    return args


def _rename(r: NdrReader, handles: HandleNames) -> Args:
    """SchRpcRename (3.2.5.4.15)."""
    return {"path": r.wstr(), "new_name": r.wstr()}


def _enable(r: NdrReader, handles: HandleNames) -> Args:
    """SchRpcEnableTask (3.2.5.4.20)."""
    return {"path": r.wstr(), "enabled": bool(r.u32())}


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    1: _register_task,
    2: _path,  # SchRpcRetrieveTask
    3: _path,  # SchRpcCreateFolder
    4: _path,  # SchRpcSetSecurity
    5: _path,  # SchRpcGetSecurity
    6: _path,  # SchRpcEnumFolders
    7: _path,  # SchRpcEnumTasks
    8: _unique_path,  # SchRpcEnumInstances
    11: _unique_path,  # SchRpcStop
    12: _run,
    13: _path,  # SchRpcDelete
    14: _rename,
    15: _path,  # SchRpcScheduledRuntimes
    16: _path,  # SchRpcGetLastRunInfo
    17: _path,  # SchRpcGetTaskInfo
    18: _path,  # SchRpcGetNumberOfMissedRuns
    19: _enable,
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
