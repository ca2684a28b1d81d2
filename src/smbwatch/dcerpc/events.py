"""From a completed DCE/RPC call to the event contract's fields, for every transport.

SMB1 transactions, SMB2 pipe reads/writes/ioctls and DCE/RPC straight over TCP all report calls
the same way: the interface, operation, status and decoded arguments, and for a service created
or reconfigured through svcctl also the contract's service fields, so a remote service creation
seen on the wire reads like the 7045/4697 record the target would log.
"""

from __future__ import annotations

from typing import Any, Final

from smbwatch.dcerpc.pipe import RpcCall

SERVICE_FIELDS: Final = (
    ("service_name", "service_name"),
    ("image_path", "binary_path"),
    ("start_type", "start_type"),
    ("service_type", "service_type"),
    ("account", "service_start_name"),
)


def call_fields(call: RpcCall) -> dict[str, Any]:
    """SmbEvent fields describing one call, for an event whose action is ``rpc_call``."""
    fields: dict[str, Any] = {
        "rpc_interface": call.interface,
        "rpc_operation": call.operation,
        "rpc_opnum": call.opnum,
        "rpc_status": call.status,
        "rpc_args": call.args or None,
    }
    if call.encrypted:
        fields["encrypted"] = True
    if call.interface == "svcctl" and call.args:
        for field, arg in SERVICE_FIELDS:
            value = call.args.get(arg)
            if value is not None:
                fields[field] = str(value)
    return fields
