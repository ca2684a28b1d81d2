"""spoolss (MS-RPRN) arguments: the printer opened and where change notifications go (T1187).

The PrinterBug (SpoolSample, printerbug.py) opens the target's print server and asks it, with
RpcRemoteFindFirstPrinterChangeNotification(Ex), to send change notifications to
``pszLocalMachine``: a UNC name of the attacker's choosing, which the target then connects to
with its machine account (authentication coercion, relayed or captured with unconstrained
delegation). The printer a handle stands for is remembered from RpcOpenPrinter(Ex).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrReader

Args = dict[str, Any]


def _open_printer(r: NdrReader, handles: HandleNames) -> Args:
    """RpcOpenPrinter (3.1.4.2.2) and RpcOpenPrinterEx (3.1.4.2.14): the printer or server."""
    name = r.unique_wstr()
    return {"printer_name": name} if name is not None else {}


def _find_first_change_notification(r: NdrReader, handles: HandleNames) -> Args:
    """RpcRemoteFindFirstPrinterChangeNotification(Ex) (3.1.4.10.3, .10.4): the client to
    notify (a UNC name), with the printer and flags that precede it."""
    printer = handles.get(r.context_handle())
    args: Args = {"printer_name": printer} if printer is not None else {}
    args["flags"] = f"0x{r.u32():08x}"
    args["options"] = f"0x{r.u32():08x}"
    local_machine = r.unique_wstr()
    if local_machine is not None:
        args["local_machine"] = local_machine
    return args


def _close_printer(r: NdrReader, handles: HandleNames) -> Args:
    """RpcClosePrinter: the printer closed, and its handle forgotten."""
    handle = r.context_handle()
    printer = handles.get(handle)
    handles.close(handle)
    return {"printer_name": printer} if printer is not None else {}


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    1: _open_printer,
    29: _close_printer,
    62: _find_first_change_notification,
    65: _find_first_change_notification,
    69: _open_printer,
}


def _opened_printer(r: NdrReader, args: Args | None, handles: HandleNames) -> None:
    """RpcOpenPrinter(Ex) response: the handle, then the return code."""
    handle = r.context_handle()
    if args and "printer_name" in args:
        handles.put(handle, args["printer_name"])


RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {
    1: _opened_printer,
    69: _opened_printer,
}
