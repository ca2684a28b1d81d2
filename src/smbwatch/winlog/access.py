"""Names of the access rights in 5140/5145 AccessList and AccessMask (MS-DTYP, msobjs.dll).

Windows logs the list as message ids (``%%4417``); rendered exports (Splunk text, Message bodies)
carry the names (``WriteData (or AddFile)``). Both become the first name, so the same event
reads the same from every format.
"""

from __future__ import annotations

import functools
import re

# msobjs.dll message id → right; the same rights by their bit in a file ACCESS_MASK.
_MESSAGE_IDS = {
    1537: "DELETE",
    1538: "READ_CONTROL",
    1539: "WRITE_DAC",
    1540: "WRITE_OWNER",
    1541: "SYNCHRONIZE",
    1542: "ACCESS_SYS_SEC",
    4416: "ReadData",
    4417: "WriteData",
    4418: "AppendData",
    4419: "ReadEA",
    4420: "WriteEA",
    4421: "Execute",
    4422: "DeleteChild",
    4423: "ReadAttributes",
    4424: "WriteAttributes",
}
_BITS = {
    0x1: "ReadData",
    0x2: "WriteData",
    0x4: "AppendData",
    0x8: "ReadEA",
    0x10: "WriteEA",
    0x20: "Execute",
    0x40: "DeleteChild",
    0x80: "ReadAttributes",
    0x100: "WriteAttributes",
    0x10000: "DELETE",
    0x20000: "READ_CONTROL",
    0x40000: "WRITE_DAC",
    0x80000: "WRITE_OWNER",
    0x100000: "SYNCHRONIZE",
    0x1000000: "ACCESS_SYS_SEC",
}
_MESSAGE_ID = re.compile(r"%%(\d+)")
# "WriteData (or AddFile)" → WriteData; "Execute/Traverse" → Execute
_RENDERED_NAME = re.compile(r"[^\s(/]+")


def access_names(logged: object) -> list[str] | None:
    """The rights of a logged AccessList, whether message ids or rendered names."""
    if isinstance(logged, list):
        logged = "\n".join(str(item) for item in logged)
    if not isinstance(logged, str) or not logged.strip():
        return None
    names = _names(logged)
    return list(names) if names else None


@functools.lru_cache(maxsize=1024)  # a log repeats the same few access lists
def _names(logged: str) -> tuple[str, ...]:
    if "%%" in logged:
        return tuple(
            _MESSAGE_IDS.get(int(number), f"%%{number}") for number in _MESSAGE_ID.findall(logged)
        )
    rendered = (_RENDERED_NAME.search(line) for line in logged.splitlines())
    return tuple(match.group() for match in rendered if match)


def mask_names(mask: int) -> list[str]:
    """The rights set in an access mask, in the order Windows lists them."""
    return [name for bit, name in _BITS.items() if mask & bit]
