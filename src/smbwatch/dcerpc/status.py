"""Names of the status codes RPC calls return: Win32 errors, NTSTATUS, HRESULT, RPC faults.

Only the codes the decoded interfaces return in practice are named; any other code is rendered
as ``0x%08X`` so nothing is lost.
"""

from __future__ import annotations

from typing import Final

from smbwatch.ntstatus import nt_status_name

WIN32_ERRORS: dict[int, str] = {
    0: "ERROR_SUCCESS",
    1: "ERROR_INVALID_FUNCTION",
    2: "ERROR_FILE_NOT_FOUND",
    3: "ERROR_PATH_NOT_FOUND",
    5: "ERROR_ACCESS_DENIED",
    6: "ERROR_INVALID_HANDLE",
    8: "ERROR_NOT_ENOUGH_MEMORY",
    13: "ERROR_INVALID_DATA",
    32: "ERROR_SHARING_VIOLATION",
    50: "ERROR_NOT_SUPPORTED",
    53: "ERROR_BAD_NETPATH",
    67: "ERROR_BAD_NET_NAME",
    80: "ERROR_FILE_EXISTS",
    87: "ERROR_INVALID_PARAMETER",
    120: "ERROR_CALL_NOT_IMPLEMENTED",
    122: "ERROR_INSUFFICIENT_BUFFER",
    123: "ERROR_INVALID_NAME",
    124: "ERROR_INVALID_LEVEL",
    161: "ERROR_BAD_PATHNAME",
    183: "ERROR_ALREADY_EXISTS",
    234: "ERROR_MORE_DATA",
    259: "ERROR_NO_MORE_ITEMS",
    998: "ERROR_NOACCESS",
    1010: "ERROR_BADKEY",
    1011: "ERROR_CANTOPEN",
    1012: "ERROR_CANTREAD",
    1013: "ERROR_CANTWRITE",
    1018: "ERROR_KEY_DELETED",
    1051: "ERROR_DEPENDENT_SERVICES_RUNNING",
    1052: "ERROR_INVALID_SERVICE_CONTROL",
    1053: "ERROR_SERVICE_REQUEST_TIMEOUT",
    1054: "ERROR_SERVICE_NO_THREAD",
    1055: "ERROR_SERVICE_DATABASE_LOCKED",
    1056: "ERROR_SERVICE_ALREADY_RUNNING",
    1057: "ERROR_INVALID_SERVICE_ACCOUNT",
    1058: "ERROR_SERVICE_DISABLED",
    1060: "ERROR_SERVICE_DOES_NOT_EXIST",
    1061: "ERROR_SERVICE_CANNOT_ACCEPT_CTRL",
    1062: "ERROR_SERVICE_NOT_ACTIVE",
    1063: "ERROR_FAILED_SERVICE_CONTROLLER_CONNECT",
    1066: "ERROR_SERVICE_SPECIFIC_ERROR",
    1068: "ERROR_SERVICE_DEPENDENCY_FAIL",
    1069: "ERROR_SERVICE_LOGON_FAILED",
    1072: "ERROR_SERVICE_MARKED_FOR_DELETE",
    1073: "ERROR_SERVICE_EXISTS",
    1078: "ERROR_DUPLICATE_SERVICE_NAME",
    1168: "ERROR_NOT_FOUND",
    1332: "ERROR_NONE_MAPPED",
    1355: "ERROR_NO_SUCH_DOMAIN",
    1717: "RPC_S_UNKNOWN_IF",
    1722: "RPC_S_SERVER_UNAVAILABLE",
    1726: "RPC_S_CALL_FAILED",
    1745: "RPC_S_PROCNUM_OUT_OF_RANGE",
    1783: "RPC_X_BAD_STUB_DATA",
    1801: "ERROR_INVALID_PRINTER_NAME",
    1804: "ERROR_INVALID_DATATYPE",
    1805: "ERROR_INVALID_ENVIRONMENT",
    2118: "NERR_DuplicateShare",
    2221: "NERR_UserNotFound",
    2310: "NERR_NetNameNotFound",
}


HRESULTS: dict[int, str] = {
    0x00000000: "S_OK",
    0x00000001: "S_FALSE",
    0x80004001: "E_NOTIMPL",
    0x80004002: "E_NOINTERFACE",
    0x80004003: "E_POINTER",
    0x80004005: "E_FAIL",
    0x8000FFFF: "E_UNEXPECTED",
    0x80070005: "E_ACCESSDENIED",
    0x80070006: "E_HANDLE",
    0x8007000E: "E_OUTOFMEMORY",
    0x80070057: "E_INVALIDARG",
    0x80041309: "SCHED_E_MALFORMEDXML",
    0x80041318: "SCHED_E_INVALIDVALUE",
    0x80041319: "SCHED_E_MISSINGNODE",
    0x80041326: "SCHED_E_TASK_DISABLED",
}

# MS-RPCE 2.2.2.11 / C706 appendix E: the status of a FAULT PDU.
FAULT_STATUSES: dict[int, str] = {
    0x1C000001: "nca_s_fault_int_div_by_zero",
    0x1C000002: "nca_s_fault_addr_error",
    0x1C000003: "nca_s_fault_fp_div_zero",
    0x1C000004: "nca_s_fault_fp_underflow",
    0x1C000005: "nca_s_fault_fp_overflow",
    0x1C000006: "nca_s_fault_invalid_tag",
    0x1C000007: "nca_s_fault_invalid_bound",
    0x1C000008: "nca_s_rpc_version_mismatch",
    0x1C000009: "nca_s_unspec_reject",
    0x1C00000A: "nca_s_bad_actid",
    0x1C00000B: "nca_s_who_are_you_failed",
    0x1C00000C: "nca_s_manager_not_entered",
    0x1C00000D: "nca_s_fault_cancel",
    0x1C00000E: "nca_s_fault_ill_inst",
    0x1C00000F: "nca_s_fault_fp_error",
    0x1C000010: "nca_s_fault_int_overflow",
    0x1C000012: "nca_s_fault_unspec",
    0x1C000013: "nca_s_fault_remote_comm_failure",
    0x1C000014: "nca_s_fault_pipe_empty",
    0x1C000015: "nca_s_fault_pipe_closed",
    0x1C000016: "nca_s_fault_pipe_order",
    0x1C000017: "nca_s_fault_pipe_discipline",
    0x1C000018: "nca_s_fault_pipe_comm_error",
    0x1C000019: "nca_s_fault_pipe_memory",
    0x1C00001A: "nca_s_fault_context_mismatch",
    0x1C00001B: "nca_s_fault_remote_no_memory",
    0x1C00001C: "nca_s_invalid_pres_context_id",
    0x1C00001D: "nca_s_unsupported_authn_level",
    0x1C00001F: "nca_s_invalid_checksum",
    0x1C000020: "nca_s_invalid_crc",
    0x1C000021: "nca_s_fault_user_defined",
    0x1C000022: "nca_s_fault_tx_open_failed",
    0x1C000023: "nca_s_fault_codeset_conv_error",
    0x1C000024: "nca_s_fault_object_not_found",
    0x1C000025: "nca_s_fault_no_client_stub",
    0x1C010002: "nca_s_op_rng_error",
    0x1C010003: "nca_s_unk_if",
    0x1C010006: "nca_s_wrong_boot_time",
    0x1C010009: "nca_s_you_crashed",
    0x1C01000B: "nca_s_proto_error",
    0x1C010013: "nca_s_out_args_too_big",
    0x1C010014: "nca_s_server_too_busy",
    0x1C010017: "nca_s_unsupported_type",
}

_HRESULT_FACILITY_WIN32: Final = 0x80070000


def _hex(code: int) -> str:
    return f"0x{code:08X}"


def win32_name(code: int) -> str:
    """``ERROR_ACCESS_DENIED`` for 5; unknown codes as hex."""
    return WIN32_ERRORS.get(code) or _hex(code)


def hresult_name(code: int) -> str:
    """``S_OK``, ``E_ACCESSDENIED``; a Win32 error wrapped in an HRESULT by its Win32 name."""
    name = HRESULTS.get(code)
    if name:
        return name
    if code & 0xFFFF0000 == _HRESULT_FACILITY_WIN32 and (code & 0xFFFF) in WIN32_ERRORS:
        return WIN32_ERRORS[code & 0xFFFF]
    return _hex(code)


def return_code_name(kind: str, code: int) -> str:
    """The name of a call's return value, read as ``kind`` (``win32``/``ntstatus``/``hresult``)."""
    if kind == "ntstatus":
        return nt_status_name(code)
    if kind == "hresult":
        return hresult_name(code)
    return win32_name(code)


def fault_name(code: int) -> str:
    """A FAULT PDU's status: an nca_s_* code, else the Win32 error Windows puts there."""
    return FAULT_STATUSES.get(code) or win32_name(code)
