"""efsrpc (MS-EFSR) arguments: the file path each call names (T1187, PetitPotam).

Coercion tools pass a UNC path to the attacker's host as the file name: the path is the evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrReader

Args = dict[str, Any]


def _file_name(r: NdrReader, handles: HandleNames) -> Args:
    """Calls whose first marshaled parameter is ``[in, string] wchar_t* FileName``."""
    return {"file_name": r.wstr()}


def _duplicate(r: NdrReader, handles: HandleNames) -> Args:
    """EfsRpcDuplicateEncryptionInfoFile (3.1.4.2.13): source and destination files."""
    return {"file_name": r.wstr(), "destination_file_name": r.wstr()}


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    0: _file_name,  # EfsRpcOpenFileRaw
    4: _file_name,  # EfsRpcEncryptFileSrv
    5: _file_name,  # EfsRpcDecryptFileSrv
    6: _file_name,  # EfsRpcQueryUsersOnFile
    7: _file_name,  # EfsRpcQueryRecoveryAgents
    8: _file_name,  # EfsRpcRemoveUsersFromFile
    9: _file_name,  # EfsRpcAddUsersToFile
    12: _file_name,  # EfsRpcFileKeyInfo
    13: _duplicate,
    21: _file_name,  # EfsRpcEncryptFileExSrv
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
