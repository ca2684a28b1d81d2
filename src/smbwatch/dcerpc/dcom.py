"""DCOM activation (MS-DCOM) arguments: which COM class a client asks a remote host to create.

Remote execution over DCOM (T1021.003) and WMI (T1047) starts with an activation request to the
target's RPC endpoint mapper port: IRemoteSCMActivator RemoteCreateInstance (or
RemoteGetClassObject, or the older IActivation RemoteActivation) naming a CLSID. The CLSID says
what comes next: WMI (``WbemLevel1Login``), MMC20.Application, ShellWindows or
ShellBrowserWindow (their methods run commands), Excel... These requests are rarely sealed.

Every DCOM call starts with an ORPCTHIS (2.2.13.1). The activation properties travel as an
OBJREF_CUSTOM whose object data is an activation properties blob (2.2.22): a CustomHeader
listing each property's CLSID and size, then the properties, each serialized on its own with an
NDR type serialization header (MS-RPCE 2.2.6). The InstantiationInfoData property holds the
class and the interfaces requested.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrError, NdrReader

Args = dict[str, Any]

OBJREF_SIGNATURE: Final = 0x574F454D  # "MEOW"
OBJREF_CUSTOM: Final = 0x4
CLSID_INSTANTIATION_INFO: Final = "000001ab-0000-0000-c000-000000000046"
CLSID_SERVER_LOCATION_INFO: Final = "000001a4-0000-0000-c000-000000000046"
SERIALIZATION_HEADER_SIZE: Final = 16  # common (8) and private (8) type serialization headers
MAX_PROPERTIES: Final = 32
MAX_INTERFACES: Final = 32
MAX_EXTENTS: Final = 64

# Classes whose remote activation is a lateral movement technique, by CLSID.
CLASSES: Final = {
    "8bc3f05e-d86b-11d0-a075-00c04fb68820": "WbemLevel1Login",  # WMI (T1047)
    "49b2791a-b1ae-4c90-9b8e-e860ba07f889": "MMC20.Application",
    "9ba05972-f6a8-11cf-a442-00a0c90a8f39": "ShellWindows",
    "c08afd90-f2a1-11d1-8455-00a0c91f3880": "ShellBrowserWindow",
    "00024500-0000-0000-c000-000000000046": "Excel.Application",
    "0006f03a-0000-0000-c000-000000000046": "Outlook.Application",
}
INTERFACES: Final = {
    "00000000-0000-0000-c000-000000000046": "IUnknown",
    "00020400-0000-0000-c000-000000000046": "IDispatch",
    "f309ad18-d86a-11d0-a075-00c04fb68820": "IWbemLevel1Login",
    "9556dc99-828c-11cf-a37e-00aa003240c7": "IWbemServices",
}


def orpcthis(r: NdrReader) -> None:
    """Skip an ORPCTHIS and its deferred ORPC_EXTENT_ARRAY (bounded)."""
    r.u16()  # version major
    r.u16()  # version minor
    r.u32()  # flags
    r.u32()  # reserved1
    r.guid()  # causality id
    if not r.pointer():
        return
    size = r.u32()
    r.u32()  # reserved
    if not r.pointer():
        return
    count = r.count()
    if count > MAX_EXTENTS or count < size:
        raise NdrError(f"ORPC_EXTENT_ARRAY of {count} for {size} extents")
    referents = [r.pointer() for _ in range(count)]
    for referent in referents[:size]:
        if referent:
            r.count()  # conformance of data
            r.guid()
            length = r.u32()
            r.skip(-length % 8 + length)


def _class_args(clsid: str, args: Args) -> None:
    args["clsid"] = clsid
    name = CLASSES.get(clsid)
    if name is not None:
        args["class_name"] = name


def _interface_pointer(r: NdrReader) -> bytes | None:
    """A [unique] MInterfacePointer: the OBJREF bytes it carries, or None for NULL."""
    if not r.pointer():
        return None
    r.count()  # conformance of abData
    data, _ = r.conformant_bytes()
    return data


def _properties(objref: bytes, args: Args) -> None:
    """The class, requested interfaces and server named by an activation properties OBJREF."""
    r = NdrReader(objref)
    if r.u32() != OBJREF_SIGNATURE or r.u32() != OBJREF_CUSTOM:
        raise NdrError("activation properties are not a custom OBJREF")
    r.guid()  # iid (IActivationPropertiesIn)
    r.guid()  # clsid of the unmarshaler (CLSID_ActivationPropertiesIn)
    r.u32()  # cbExtension
    r.u32()  # reserved (size)
    r.u32()  # ActivationPropertiesBlob.dwSize
    r.u32()  # dwReserved
    blob = r.raw(r.remaining)
    header = _serialized(blob)
    header.u32()  # totalSize
    header_size = header.u32()
    header.u32()  # dwReserved
    header.u32()  # destCtx
    count = header.u32()
    if count > MAX_PROPERTIES:
        raise NdrError(f"{count} activation properties")
    header.guid()  # classInfoClsid
    has_clsids, has_sizes = header.pointer(), header.pointer()
    header.pointer()  # pdwReserved
    clsids = _guids(header, count) if has_clsids else []
    sizes = _dwords(header, count) if has_sizes else []
    offset = header_size
    for clsid, size in zip(clsids, sizes, strict=False):
        if offset + size > len(blob):
            raise NdrError(f"activation property of {size} bytes past the blob")
        prop = _serialized(blob[offset : offset + size])
        if clsid == CLSID_INSTANTIATION_INFO:
            _instantiation_info(prop, args)
        elif clsid == CLSID_SERVER_LOCATION_INFO:
            _server_location(prop, args)
        offset += size


def _serialized(data: bytes) -> NdrReader:
    """A reader over one type-serialized object (MS-RPCE 2.2.6), after its two headers."""
    if len(data) < SERIALIZATION_HEADER_SIZE or data[0] != 1:
        raise NdrError("no NDR type serialization header")
    little = data[1] == 0x10
    return NdrReader(data[SERIALIZATION_HEADER_SIZE:], little_endian=little)


def _guids(r: NdrReader, limit: int) -> list[str]:
    count = r.count()
    if count > limit:
        raise NdrError(f"{count} GUIDs where {limit} were announced")
    return [r.guid() for _ in range(count)]


def _dwords(r: NdrReader, limit: int) -> list[int]:
    count = r.count()
    if count > limit:
        raise NdrError(f"{count} sizes where {limit} were announced")
    return [r.u32() for _ in range(count)]


def _instantiation_info(r: NdrReader, args: Args) -> None:
    """InstantiationInfoData (2.2.22.2.1): the class and the interfaces asked for."""
    _class_args(r.guid(), args)
    r.u32()  # classCtx
    r.u32()  # actvflags
    r.u32()  # fIsSurrogate
    count = r.u32()
    r.u32()  # instFlag
    if count > MAX_INTERFACES:
        raise NdrError(f"{count} interfaces requested")
    has_interfaces = r.pointer()
    r.u32()  # thisSize
    r.u16()  # clientCOMVersion major
    r.u16()  # minor
    if has_interfaces:
        args["interfaces"] = [INTERFACES.get(iid, iid) for iid in _guids(r, count)]


def _server_location(r: NdrReader, args: Args) -> None:
    """ServerLocationInfoData (2.2.22.2.6): the machine the client named, if any."""
    named = r.pointer()
    r.u32()  # processId
    r.u32()  # apartmentId
    r.u32()  # contextId
    if named:
        args["machine_name"] = r.wstr()


def _activation_properties(r: NdrReader) -> Args:
    """A [unique] pActProperties: what the activation asks for."""
    args: Args = {}
    objref = _interface_pointer(r)
    if objref is not None:
        _properties(objref, args)
    return args


def _remote_create_instance(r: NdrReader, handles: HandleNames) -> Args:
    """RemoteCreateInstance (3.1.2.5.2.3.2): ORPCTHIS, pUnkOuter, pActProperties."""
    orpcthis(r)
    _interface_pointer(r)  # pUnkOuter (aggregation): not used remotely
    return _activation_properties(r)


def _remote_get_class_object(r: NdrReader, handles: HandleNames) -> Args:
    """RemoteGetClassObject (3.1.2.5.2.3.1): ORPCTHIS, pActProperties."""
    orpcthis(r)
    return _activation_properties(r)


def _remote_activation(r: NdrReader, handles: HandleNames) -> Args:
    """IActivation RemoteActivation (3.1.2.5.1.1): the CLSID is a plain parameter."""
    orpcthis(r)
    args: Args = {}
    _class_args(r.guid(), args)
    return args


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    0: _remote_activation,  # IActivation (the opnums of the two interfaces do not overlap)
    3: _remote_get_class_object,
    4: _remote_create_instance,
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
