"""ITaskSchedulerService (MS-TSCH 3.2.5.4) arguments: remote scheduled tasks (T1053.005).

SchRpcRegisterTask carries the whole task as XML; the command lines are taken from its
``Actions/Exec`` elements with expat, refusing any DOCTYPE (so no entity expansion, internal or
external) and bounded in size by the stub it came in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final
from xml.parsers import expat

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrReader

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
# Task XML elements reported, by their path below <Task> (namespace dropped).
_PRINCIPAL_FIELDS: Final = {
    ("Principals", "Principal", "UserId"): "user_id",
    ("Principals", "Principal", "GroupId"): "group_id",
    ("Principals", "Principal", "RunLevel"): "run_level",
    ("Principals", "Principal", "LogonType"): "principal_logon_type",
    ("Settings", "Hidden"): "hidden",
    ("RegistrationInfo", "Author"): "author",
}


class TaskXmlError(ValueError):
    """Task XML that is malformed or declares a DOCTYPE."""


def _refuse_doctype(*_: object) -> None:
    raise TaskXmlError("task XML declares a DOCTYPE (entities refused)")


def parse_task_xml(xml: str) -> Args:
    """The actions (``command``/``arguments``, ``exec`` list) and principal of a task XML."""
    parser = expat.ParserCreate(encoding="utf-8")  # the text is already decoded: ignore its prolog
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    path: list[str] = []
    text: list[str] = []
    actions: list[dict[str, str]] = []
    found: Args = {}

    def start(name: str, _attributes: dict[str, str]) -> None:
        path.append(name.rsplit("}", 1)[-1])
        text.clear()
        if path[1:] == ["Actions", "Exec"]:
            actions.append({})

    def end(_name: str) -> None:
        value = "".join(text).strip()
        inner = tuple(path[1:])
        if len(inner) == 3 and inner[:2] == ("Actions", "Exec") and actions:
            key = {
                "Command": "command",
                "Arguments": "arguments",
                "WorkingDirectory": "working_directory",
            }
            if inner[2] in key:
                actions[-1][key[inner[2]]] = value
        elif inner in _PRINCIPAL_FIELDS:
            found[_PRINCIPAL_FIELDS[inner]] = value
        path.pop()
        text.clear()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(xml.encode("utf-8", "replace"), True)
    except expat.ExpatError as error:
        raise TaskXmlError(f"task XML: {error}") from error
    if actions:
        found["command"] = actions[0].get("command")
        if "arguments" in actions[0]:
            found["arguments"] = actions[0]["arguments"]
        if len(actions) > 1:
            found["exec"] = actions
    return found


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
