"""atsvc (MS-TSCH 3.2.5.2, the "at" service) arguments: jobs scheduled remotely (T1053.002)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from smbwatch.dcerpc.handles import HandleNames
from smbwatch.dcerpc.ndr import NdrReader

Args = dict[str, Any]

DAYS_OF_WEEK: Final = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
JOB_FLAGS: Final = (
    (0x01, "JOB_RUN_PERIODICALLY"),
    (0x02, "JOB_EXEC_ERROR"),
    (0x04, "JOB_RUNS_TODAY"),
    (0x08, "JOB_ADD_CURRENT_DATE"),
    (0x10, "JOB_NONINTERACTIVE"),
)


def _time_of_day(milliseconds: int) -> str:
    """AT_INFO.JobTime (milliseconds after midnight) as ``HH:MM:SS``."""
    seconds = milliseconds // 1000
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _job_add(r: NdrReader, handles: HandleNames) -> Args:
    """NetrJobAdd (3.2.5.2.1): ServerName, then the AT_INFO the job is built from."""
    args: Args = {}
    server = r.unique_wstr()
    if server is not None:
        args["server"] = server
    job_time = r.pointer_sized()  # AT_INFO.JobTime: DWORD_PTR
    days_of_month = r.u32()
    days_of_week = r.u8()
    flags = r.u8()
    command_referent = r.pointer()
    args["command"] = r.wstr() if command_referent else None
    args["time_of_day"] = _time_of_day(job_time)
    args["days_of_month"] = [day + 1 for day in range(31) if days_of_month >> day & 1]
    args["days_of_week"] = [
        name for bit, name in enumerate(DAYS_OF_WEEK) if days_of_week >> bit & 1
    ]
    args["flags"] = [name for bit, name in JOB_FLAGS if flags & bit]
    return args


def _job_del(r: NdrReader, handles: HandleNames) -> Args:
    """NetrJobDel (3.2.5.2.2): the range of job ids deleted."""
    server = r.unique_wstr()
    args: Args = {"min_job_id": r.u32(), "max_job_id": r.u32()}
    if server is not None:
        args["server"] = server
    return args


def _job_get_info(r: NdrReader, handles: HandleNames) -> Args:
    """NetrJobGetInfo (3.2.5.2.4)."""
    server = r.unique_wstr()
    args: Args = {"job_id": r.u32()}
    if server is not None:
        args["server"] = server
    return args


REQUESTS: dict[int, Callable[[NdrReader, HandleNames], Args]] = {
    0: _job_add,
    1: _job_del,
    3: _job_get_info,
}
RESPONSES: dict[int, Callable[[NdrReader, Args | None, HandleNames], None]] = {}
