"""WMI (MS-WMI) arguments: remote WMI sessions, queries and method calls (T1047).

wmiexec, Empire and ``wmic /node:`` run a command with IWbemServices::ExecMethod of
``Win32_Process`` method ``Create``, after IWbemLevel1Login::NTLMLogin into a namespace
(``//./root/cimv2``). The class and method travel as BSTRs; the command line itself is inside
the in-parameters object (a WMI-encoded class instance), which is not decoded here. WMI
clients usually seal these calls (packet privacy): the operation is then all the wire shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smbwatch.dcerpc.dcom import orpcthis
from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrError, NdrReader
from smbwatch.utf16 import utf16le

Args = dict[str, Any]


def bstr(r: NdrReader) -> str | None:
    """A wire BSTR (MS-OAUT 2.2.23.2): a [unique] FLAGGED_WORD_BLOB (conformance, cBytes,
    clSize, clSize UTF-16 units), or None for NULL."""
    if not r.pointer():
        return None
    conformance = r.count()
    length = r.u32()  # cBytes
    units = r.u32()  # clSize
    if conformance != units or length > 2 * units:
        raise NdrError(f"BSTR of {length} bytes in {units} units (conformance {conformance})")
    return utf16le(r.raw(2 * units)[:length])


def _strings(*names: str) -> Callable[[NdrReader, HandleNames], Args]:
    """Calls whose parameters after the ORPCTHIS start with BSTRs, named in order."""

    def decode(r: NdrReader, handles: HandleNames) -> Args:
        orpcthis(r)
        args: Args = {}
        for name in names:
            value = bstr(r)
            if value is not None:
                args[name] = value
        return args

    return decode


_OBJECT_PATH = _strings("object_path")
_QUERY = _strings("query_language", "query")
_METHOD = _strings("object_path", "method")

# IWbemServices (3.1.4.3) by opnum.
REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    3: _strings("namespace"),  # OpenNamespace
    6: _OBJECT_PATH,  # GetObject
    7: _OBJECT_PATH,  # GetObjectAsync
    10: _strings("class"),  # DeleteClass
    11: _strings("class"),  # DeleteClassAsync
    12: _strings("superclass"),  # CreateClassEnum
    13: _strings("superclass"),  # CreateClassEnumAsync
    16: _OBJECT_PATH,  # DeleteInstance
    17: _OBJECT_PATH,  # DeleteInstanceAsync
    18: _strings("class"),  # CreateInstanceEnum
    19: _strings("class"),  # CreateInstanceEnumAsync
    20: _QUERY,  # ExecQuery
    21: _QUERY,  # ExecQueryAsync
    22: _QUERY,  # ExecNotificationQuery
    23: _QUERY,  # ExecNotificationQueryAsync
    24: _METHOD,  # ExecMethod
    25: _METHOD,  # ExecMethodAsync
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
