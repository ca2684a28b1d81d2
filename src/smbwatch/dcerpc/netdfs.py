"""netdfs (MS-DFSNM) arguments: stand-alone DFS roots added or removed (T1187, DFSCoerce).

DFSCoerce calls NetrDfsRemoveStdRoot (or NetrDfsAddStdRoot) on a domain controller with
``ServerName`` set to the attacker's host: the DC connects there to carry out the request and
authenticates with its machine account. The server name is the evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrReader

Args = dict[str, Any]


def _add_std_root(r: NdrReader, handles: HandleNames) -> Args:
    """NetrDfsAddStdRoot (3.1.4.4.1): server, root share, comment, flags."""
    args: Args = {"server_name": r.wstr(), "root_share": r.wstr(), "comment": r.wstr()}
    args["flags"] = r.u32()
    return args


def _remove_std_root(r: NdrReader, handles: HandleNames) -> Args:
    """NetrDfsRemoveStdRoot (3.1.4.4.2): server, root share, flags."""
    args: Args = {"server_name": r.wstr(), "root_share": r.wstr()}
    args["flags"] = r.u32()
    return args


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    12: _add_std_root,
    13: _remove_std_root,
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
