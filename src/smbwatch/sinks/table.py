"""A readable table on a terminal, safe against hostile names.

File, share and user names come from attackers' traffic: control characters (which could move the
cursor or rewrite earlier lines) and Unicode direction overrides (which disguise ``exe.txt`` as
``txt.exe``) are shown escaped, and cells are rich ``Text`` so no name is read as markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

BATCH = 1000  # rows per printed table: bounded memory on long outputs
NON_TERMINAL_WIDTH = 240  # a table written to a file or pipe is not folded to 80 columns
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def safe_text(value: Any) -> str:
    """The value as text with control and direction-override characters escaped (``\\x1b``)."""
    text = "" if value is None else str(value)
    return _UNSAFE.sub(
        lambda m: (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"
        ),
        text,
    )


def write_table(
    rows: Iterable[dict[str, Any]], out: TextIO, columns: Sequence[Column], title: str
) -> int:
    """Print rows as tables of at most BATCH rows; the number of rows."""
    width = None if out.isatty() else NON_TERMINAL_WIDTH
    console = Console(file=out, highlight=False, soft_wrap=False, width=width)
    count = 0
    table = _new_table(columns, title)
    for row in rows:
        table.add_row(*(Text(safe_text(get(row))) for _, get in columns))
        count += 1
        if count % BATCH == 0:
            console.print(table)
            table = _new_table(columns, None)
    if table.row_count or not count:
        console.print(table)
    return count


def _new_table(columns: Sequence[Column], title: str | None) -> Table:
    table = Table(title=title, show_lines=False, header_style="bold", expand=False)
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    return table


def _endpoint(row: dict[str, Any], ip: str, port: str) -> str:
    address = row.get(ip)
    if address is None:
        return ""
    return f"{address}:{row[port]}" if row.get(port) is not None else str(address)


def _identity(row: dict[str, Any]) -> str:
    user, domain = row.get("user"), row.get("domain")
    if user is None:
        return ""
    return f"{domain}\\{user}" if domain else str(user)


def _target(row: dict[str, Any]) -> str:
    path = row.get("path") or row.get("pipe") or ""
    if row.get("new_path"):
        path = f"{path} -> {row['new_path']}"
    return path


def _details(row: dict[str, Any]) -> str:
    """The facts that matter for this kind of event, compactly."""
    parts = []
    if row.get("dialect") and row.get("action") in ("negotiate", "logon"):
        parts.append(f"SMB {row['dialect']}")
    if row.get("access_mask") is not None:
        parts.append(f"access={row['access_mask']:#x}")
    for name in ("disposition", "create_action", "info_class", "fsctl", "pattern", "magic"):
        if row.get(name):
            parts.append(str(row[name]))
    if row.get("bytes") is not None:
        parts.append(f"{row['bytes']}B@{row.get('offset') or 0}")
    if row.get("rpc_operation"):
        call = f"{row.get('rpc_interface') or '?'}.{row['rpc_operation']}"
        parts.append(f"{call} -> {row['rpc_status']}" if row.get("rpc_status") else call)
    args = row.get("rpc_args")
    if args:
        shown = {"interfaces": args["interfaces"]} if "contexts" in args else args
        parts.append(" ".join(f"{k}={v}" for k, v in shown.items()))
    if row.get("service_name"):
        parts.append(f"service={row['service_name']} image={row.get('image_path')}")
    if row.get("sha256"):
        parts.append(f"sha256={row['sha256']}")
    if row.get("encrypted"):
        parts.append("encrypted")
    return " ".join(parts)


EVENT_COLUMNS: list[Column] = [
    ("time", lambda r: r.get("time")),
    ("client", lambda r: _endpoint(r, "src_ip", "src_port")),
    ("server", lambda r: r.get("server") or _endpoint(r, "dst_ip", "dst_port")),
    ("user", _identity),
    ("action", lambda r: r.get("action")),
    ("share", lambda r: r.get("share") or r.get("share_name")),
    ("path", _target),
    ("status", lambda r: r.get("status")),
    ("details", _details),
]


def _seen(row: dict[str, Any]) -> str:
    """How many sources saw the message, when more than one did."""
    count = len(row.get("seen_by") or ())
    return str(count) if count > 1 else ""


# The timeline of a case: machines and users by their one name (``src_host``, ``principal``).
TIMELINE_COLUMNS: list[Column] = [
    ("time", lambda r: r.get("time")),
    ("from", lambda r: r.get("src_host") or _endpoint(r, "src_ip", "src_port")),
    ("to", lambda r: r.get("dst_host") or r.get("server") or _endpoint(r, "dst_ip", "dst_port")),
    ("user", lambda r: r.get("principal") or _identity(r)),
    ("action", lambda r: r.get("action")),
    ("share", lambda r: r.get("share_name") or r.get("share")),
    ("path", _target),
    ("status", lambda r: r.get("status")),
    ("details", _details),
    ("seen", _seen),
]
