"""winreg (MS-RRP) arguments: remote registry reads and writes (T1112, T1003.002 ``reg save``).

Keys are named by handles; the pipe remembers what each handle was opened on (a hive from
OpenLocalMachine..., then ``hive\\sub\\key`` from BaseRegOpenKey/BaseRegCreateKey), so every call
carries the full ``key`` path when its opening was seen. Value data is decoded for the string
and integer types; other data is shown as hex, at most ``MAX_DATA_BYTES`` of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrReader
from smbwatch.utf16 import utf16le

Args = dict[str, Any]

MAX_DATA_BYTES: Final = 256

HIVES: Final = {
    0: "HKCR",  # OpenClassesRoot
    1: "HKCU",  # OpenCurrentUser
    2: "HKLM",  # OpenLocalMachine
    3: "HKPD",  # OpenPerformanceData
    4: "HKU",  # OpenUsers
    27: "HKCC",  # OpenCurrentConfig
    28: "HKDD",  # OpenDynData
    32: "HKPT",  # OpenPerformanceText
    33: "HKPN",  # OpenPerformanceNlsText
}
VALUE_TYPES: Final = {
    0: "REG_NONE",
    1: "REG_SZ",
    2: "REG_EXPAND_SZ",
    3: "REG_BINARY",
    4: "REG_DWORD",
    5: "REG_DWORD_BIG_ENDIAN",
    6: "REG_LINK",
    7: "REG_MULTI_SZ",
    8: "REG_RESOURCE_LIST",
    9: "REG_FULL_RESOURCE_DESCRIPTOR",
    10: "REG_RESOURCE_REQUIREMENTS_LIST",
    11: "REG_QWORD",
}


def value_data(value_type: int, data: bytes) -> Any:
    """Registry value data as the type says: text, a list of texts, an integer, or hex."""
    if value_type in (1, 2, 6):
        return utf16le(data).split("\x00", 1)[0]
    if value_type == 7:
        return [item for item in utf16le(data).split("\x00") if item]
    if value_type == 4 and len(data) == 4:
        return int.from_bytes(data, "little")
    if value_type == 5 and len(data) == 4:
        return int.from_bytes(data, "big")
    if value_type == 11 and len(data) == 8:
        return int.from_bytes(data, "little")
    return data[:MAX_DATA_BYTES].hex()


def _key(r: NdrReader, handles: HandleNames) -> Args:
    """Calls on a key handle: the key's path, when this pipe saw it opened."""
    path = handles.get(r.context_handle())
    return {"key": path} if path is not None else {}


def _open_hive(opnum: int) -> Callable[[NdrReader, HandleNames], Args]:
    """OpenLocalMachine and the other predefined keys (3.1.5.1-3.1.5.5...)."""

    def decode(r: NdrReader, handles: HandleNames) -> Args:
        if r.pointer():  # ServerName: a pointer to one WCHAR, ignored by servers
            r.u16()
        return {"hive": HIVES[opnum], "access_mask": r.u32()}

    return decode


def _sub_key(r: NdrReader, handles: HandleNames) -> Args:
    """BaseRegOpenKey, BaseRegCreateKey, BaseRegDeleteKey(Ex): the key and the sub key named."""
    args = _key(r, handles)
    sub_key = r.unicode_string_value()
    if sub_key is not None:
        args["sub_key"] = sub_key
        if "key" in args:
            args["path"] = f"{args['key']}\\{sub_key}" if sub_key else args["key"]
    return args


def _value_name(r: NdrReader, handles: HandleNames) -> Args:
    """BaseRegQueryValue, BaseRegDeleteValue: the key and the value named."""
    args = _key(r, handles)
    args["value_name"] = r.unicode_string_value() or ""
    return args


def _set_value(r: NdrReader, handles: HandleNames) -> Args:
    """BaseRegSetValue (3.1.5.22): key, value name, type and (short) data."""
    args = _value_name(r, handles)
    value_type = r.u32()
    args["value_type"] = VALUE_TYPES.get(value_type, f"0x{value_type:X}")
    data, size = r.conformant_bytes()
    args["data"] = value_data(value_type, data)
    args["data_size"] = size
    return args


def _file(r: NdrReader, handles: HandleNames) -> Args:
    """BaseRegSaveKey(Ex), BaseRegRestoreKey: the key and the file it is saved to/loaded from."""
    args = _key(r, handles)
    args["file"] = r.unicode_string_value()
    return args


def _load_key(r: NdrReader, handles: HandleNames) -> Args:
    """BaseRegLoadKey (3.1.5.13): a hive file loaded under a sub key."""
    args = _sub_key(r, handles)
    args["file"] = r.unicode_string_value()
    return args


def _close(r: NdrReader, handles: HandleNames) -> Args:
    """BaseRegCloseKey: the key closed, and its handle forgotten."""
    handle = r.context_handle()
    path = handles.get(handle)
    handles.close(handle)
    return {"key": path} if path is not None else {}


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    **{opnum: _open_hive(opnum) for opnum in HIVES},
    5: _close,
    6: _sub_key,  # BaseRegCreateKey
    7: _sub_key,  # BaseRegDeleteKey
    8: _value_name,  # BaseRegDeleteValue
    9: _key,  # BaseRegEnumKey
    10: _key,  # BaseRegEnumValue
    11: _key,  # BaseRegFlushKey
    12: _key,  # BaseRegGetKeySecurity
    13: _load_key,
    14: _key,  # BaseRegNotifyChangeKeyValue
    15: _sub_key,  # BaseRegOpenKey
    16: _key,  # BaseRegQueryInfoKey
    17: _value_name,  # BaseRegQueryValue
    19: _file,  # BaseRegRestoreKey
    20: _file,  # BaseRegSaveKey
    21: _key,  # BaseRegSetKeySecurity
    22: _set_value,
    23: _sub_key,  # BaseRegUnLoadKey
    29: _key,  # BaseRegQueryMultipleValues
    31: _file,  # BaseRegSaveKeyEx
    34: _key,  # BaseRegQueryMultipleValues2
    35: _sub_key,  # BaseRegDeleteKeyEx
}


def _opened_hive(r: NdrReader, args: Args | None, handles: HandleNames) -> None:
    """A predefined key's handle stands for its hive."""
    handle = r.context_handle()
    if args:
        handles.put(handle, args["hive"])


def _opened_key(r: NdrReader, args: Args | None, handles: HandleNames) -> None:
    """BaseRegOpenKey/BaseRegCreateKey response: phkResult comes first."""
    handle = r.context_handle()
    if args and "path" in args:
        handles.put(handle, args["path"])


RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {
    **dict.fromkeys(HIVES, _opened_hive),
    6: _opened_key,
    15: _opened_key,
}
