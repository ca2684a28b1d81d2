"""svcctl (MS-SCMR) arguments: remote service creation, configuration and start (T1569.002).

Argument names follow the event contract's service fields: ``service_name``, ``display_name``,
``binary_path`` (the command line), ``start_type``, ``service_type``, ``error_control``,
``service_start_name`` (the account); enum values carry their MS-SCMR names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrReader
from smbwatch.utf16 import utf16le

Args = dict[str, Any]

START_TYPES: Final = {
    0: "SERVICE_BOOT_START",
    1: "SERVICE_SYSTEM_START",
    2: "SERVICE_AUTO_START",
    3: "SERVICE_DEMAND_START",
    4: "SERVICE_DISABLED",
}
ERROR_CONTROLS: Final = {
    0: "SERVICE_ERROR_IGNORE",
    1: "SERVICE_ERROR_NORMAL",
    2: "SERVICE_ERROR_SEVERE",
    3: "SERVICE_ERROR_CRITICAL",
}
SERVICE_TYPE_BITS: Final = (
    (0x001, "SERVICE_KERNEL_DRIVER"),
    (0x002, "SERVICE_FILE_SYSTEM_DRIVER"),
    (0x010, "SERVICE_WIN32_OWN_PROCESS"),
    (0x020, "SERVICE_WIN32_SHARE_PROCESS"),
    (0x040, "SERVICE_USER_SERVICE"),
    (0x080, "SERVICE_USERSERVICE_INSTANCE"),
    (0x100, "SERVICE_INTERACTIVE_PROCESS"),
)
CONTROLS: Final = {
    1: "SERVICE_CONTROL_STOP",
    2: "SERVICE_CONTROL_PAUSE",
    3: "SERVICE_CONTROL_CONTINUE",
    4: "SERVICE_CONTROL_INTERROGATE",
    5: "SERVICE_CONTROL_SHUTDOWN",
    6: "SERVICE_CONTROL_PARAMCHANGE",
    7: "SERVICE_CONTROL_NETBINDADD",
    8: "SERVICE_CONTROL_NETBINDREMOVE",
    9: "SERVICE_CONTROL_NETBINDENABLE",
    10: "SERVICE_CONTROL_NETBINDDISABLE",
}
SERVICE_NO_CHANGE: Final = 0xFFFFFFFF


def _name(table: dict[int, str], value: int) -> str:
    return table.get(value) or f"0x{value:X}"


def service_type_name(value: int) -> str:
    """``SERVICE_WIN32_OWN_PROCESS|SERVICE_INTERACTIVE_PROCESS``; unknown bits in hex."""
    names = [name for bit, name in SERVICE_TYPE_BITS if value & bit]
    rest = value & ~sum(bit for bit, _ in SERVICE_TYPE_BITS)
    if rest or not names:
        names.append(f"0x{rest:X}")
    return "|".join(names)


def _multi_sz(data: bytes, wide: bool) -> list[str]:
    """A REG_MULTI_SZ-style list (service dependencies): NUL-separated, empty entries dropped."""
    text = utf16le(data) if wide else data.decode("cp1252", "replace")
    return [item for item in text.split("\x00") if item]


def _config(r: NdrReader, args: Args) -> None:
    """The service type, start type and error control DWORDs, by name (NO_CHANGE left out)."""
    for key, render in (
        ("service_type", service_type_name),
        ("start_type", lambda v: _name(START_TYPES, v)),
        ("error_control", lambda v: _name(ERROR_CONTROLS, v)),
    ):
        value = r.u32()
        if value != SERVICE_NO_CHANGE:
            args[key] = render(value)


def _tail(r: NdrReader, wide: bool, args: Args) -> None:
    """lpLoadOrderGroup, lpdwTagId, lpDependencies, dwDependSize, lpServiceStartName, password."""
    text = r.unique_wstr if wide else r.unique_astr
    group = text()
    if group:
        args["load_order_group"] = group
    if r.pointer():  # lpdwTagId
        r.u32()
    if r.pointer():  # lpDependencies
        dependencies, _ = r.conformant_bytes()
        if names := _multi_sz(dependencies, wide):
            args["dependencies"] = names
    r.u32()  # dwDependSize
    account = text()
    if account is not None:
        args["service_start_name"] = account
    if r.pointer():  # lpPassword: encrypted with the session key; only its presence is told
        r.conformant_bytes()
        args["password_set"] = True
    r.u32()  # dwPwSize


def _create_service(wide: bool) -> Callable[[NdrReader, HandleNames], Args]:
    """RCreateServiceW/A, RCreateServiceWOW64W/A, RCreateWowService (MS-SCMR 3.1.4.12...)."""

    def decode(r: NdrReader, handles: HandleNames) -> Args:
        r.context_handle()
        args: Args = {"service_name": r.wstr() if wide else r.astr()}
        display = r.unique_wstr() if wide else r.unique_astr()
        if display is not None:
            args["display_name"] = display
        args["access_mask"] = r.u32()
        _config(r, args)
        args["binary_path"] = r.wstr() if wide else r.astr()
        _tail(r, wide, args)
        return args

    return decode


def _change_service_config(wide: bool) -> Callable[[NdrReader, HandleNames], Args]:
    """RChangeServiceConfigW/A (3.1.4.11): only what is changed is given."""

    def decode(r: NdrReader, handles: HandleNames) -> Args:
        args = _service(r, handles)
        _config(r, args)
        path = r.unique_wstr() if wide else r.unique_astr()
        if path is not None:
            args["binary_path"] = path
        _tail(r, wide, args)
        display = r.unique_wstr() if wide else r.unique_astr()
        if display is not None:
            args["display_name"] = display
        return args

    return decode


def _open_sc_manager(wide: bool) -> Callable[[NdrReader, HandleNames], Args]:
    """ROpenSCManagerW/A (3.1.4.15): the machine and database named."""

    def decode(r: NdrReader, handles: HandleNames) -> Args:
        text = r.unique_wstr if wide else r.unique_astr
        machine, database = text(), text()
        args: Args = {"access_mask": r.u32()}
        if machine is not None:
            args["machine_name"] = machine
        if database is not None:
            args["database_name"] = database
        return args

    return decode


def _open_sc_manager2(r: NdrReader, handles: HandleNames) -> Args:
    """ROpenSCManager2 (opnum 64): the database name and access (the binding is implicit)."""
    database = r.unique_wstr()
    args: Args = {"access_mask": r.u32()}
    if database is not None:
        args["database_name"] = database
    return args


def _open_service(wide: bool) -> Callable[[NdrReader, HandleNames], Args]:
    """ROpenServiceW/A (3.1.4.16)."""

    def decode(r: NdrReader, handles: HandleNames) -> Args:
        r.context_handle()
        name = r.wstr() if wide else r.astr()
        return {"service_name": name, "access_mask": r.u32()}

    return decode


def _service(r: NdrReader, handles: HandleNames) -> Args:
    """Calls on a service handle: the service it was opened on, when this pipe saw that."""
    name = handles.get(r.context_handle())
    return {"service_name": name} if name is not None else {}


def _start_service(wide: bool) -> Callable[[NdrReader, HandleNames], Args]:
    """RStartServiceW/A (3.1.4.19): the service and the arguments it is started with."""

    def decode(r: NdrReader, handles: HandleNames) -> Args:
        args = _service(r, handles)
        argc = r.u32()
        if r.pointer():
            count = r.array_count(r.count())
            if count != argc:
                args["argc"] = argc
            referents = [r.pointer() for _ in range(count)]
            text = r.wstr if wide else r.astr
            args["arguments"] = [text() for referent in referents if referent]
        return args

    return decode


def _control_service(r: NdrReader, handles: HandleNames) -> Args:
    """RControlService (3.1.4.2): the service and the control sent (stop, pause...)."""
    args = _service(r, handles)
    args["control"] = _name(CONTROLS, r.u32())
    return args


def _close(r: NdrReader, handles: HandleNames) -> Args:
    """RCloseServiceHandle: the name of what is closed, and the handle forgotten."""
    handle = r.context_handle()
    name = handles.get(handle)
    handles.close(handle)
    return {"service_name": name} if name is not None else {}


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    0: _close,
    1: _control_service,
    2: _service,  # DeleteService
    6: _service,  # QueryServiceStatus
    11: _change_service_config(wide=True),
    12: _create_service(wide=True),
    15: _open_sc_manager(wide=True),
    16: _open_service(wide=True),
    17: _service,  # QueryServiceConfigW
    19: _start_service(wide=True),
    23: _change_service_config(wide=False),
    24: _create_service(wide=False),
    27: _open_sc_manager(wide=False),
    28: _open_service(wide=False),
    29: _service,  # QueryServiceConfigA
    31: _start_service(wide=False),
    40: _service,  # QueryServiceStatusEx
    44: _create_service(wide=False),
    45: _create_service(wide=True),
    60: _create_service(wide=True),  # RCreateWowService: CreateServiceW + dwServiceWowType
    64: _open_sc_manager2,
}


def _opened_service(r: NdrReader, args: Args | None, handles: HandleNames) -> None:
    """ROpenServiceW/A response: lpServiceHandle, then the return code."""
    handle = r.context_handle()
    if args and "service_name" in args:
        handles.put(handle, args["service_name"])


def _created_service(r: NdrReader, args: Args | None, handles: HandleNames) -> None:
    """RCreateService* response: lpdwTagId, lpServiceHandle, then the return code."""
    if r.pointer():
        r.u32()
    _opened_service(r, args, handles)


RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {
    12: _created_service,
    16: _opened_service,
    24: _created_service,
    28: _opened_service,
    44: _created_service,
    45: _created_service,
    60: _created_service,
}
