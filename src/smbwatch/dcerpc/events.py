"""From a completed DCE/RPC call to the event contract's fields, for every transport.

SMB1 transactions, SMB2 pipe reads/writes/ioctls and DCE/RPC straight over TCP all report calls
the same way: the interface, operation, status and decoded arguments, and for a service created
or reconfigured through svcctl also the contract's service fields, so a remote service creation
seen on the wire reads like the 7045/4697 record the target would log; a task registered through
the Task Scheduler likewise fills the task fields of the target's 4698.
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
# Task Scheduler calls whose ``path`` names a task (not a folder), and the task fields their
# arguments fill; atsvc's NetrJobAdd has only a command line.
TASK_OPERATIONS: Final = frozenset(
    ("SchRpcRegisterTask", "SchRpcRetrieveTask", "SchRpcRun", "SchRpcDelete", "SchRpcEnableTask")
)
TASK_FIELDS: Final = (
    ("task_name", "path"),
    ("task_command", "command"),
    ("task_arguments", "arguments"),
    ("task_author", "author"),
    ("task_user", "user_id"),
    ("task_run_level", "run_level"),
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
    if not call.args:
        return fields
    if call.interface == "svcctl":
        _copy(call.args, SERVICE_FIELDS, fields)
    elif call.interface == "ITaskSchedulerService" and call.operation in TASK_OPERATIONS:
        _copy(call.args, TASK_FIELDS, fields)
    elif call.interface == "atsvc" and call.operation == "NetrJobAdd":
        _copy(call.args, (("task_command", "command"),), fields)
    return fields


def _copy(args: dict[str, Any], names: tuple[tuple[str, str], ...], fields: dict[str, Any]) -> None:
    """Contract fields from the decoded arguments that have them."""
    for field, arg in names:
        value = args.get(arg)
        if value is not None:
            fields[field] = str(value)
