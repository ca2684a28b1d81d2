"""A readable table on a terminal: one line per row, fitted to the terminal's width, safe against
hostile names.

Each row is one line: the columns that fit are shown, most important first (a column's
``priority``), each cell cut to its column's width with ``…``; a wider terminal shows more
columns and more of each cell. Timestamps are never cut: they are shown to the second, or
whole with ``wide``, which also keeps every cell whole (lines then run as long as they need).
A table written to a file or pipe is laid out for ``NON_TERMINAL_WIDTH`` columns.

File, share and user names come from attackers' traffic: control characters (which could move the
cursor or rewrite earlier lines) and Unicode direction overrides (which disguise ``exe.txt`` as
``txt.exe``) are shown escaped, and cells are rich ``Text`` so no name is read as markup. Widths
are counted in terminal cells, so wide (East Asian) characters cannot push a line past the edge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

BATCH = 1000  # rows laid out together: bounded memory on long outputs
NON_TERMINAL_WIDTH = 240  # a table written to a file or pipe is not fitted to 80 columns
GAP = 2  # spaces between columns
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_SECONDS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.\d+Z$")


class Column:
    """One column: its header, how its cell is read from a row, and how it is laid out.

    ``priority`` orders the columns by importance (1 first) when not all fit; ``min_width`` is
    the narrowest the column is shown at, ``max_width`` the widest it grows to (None: no bound);
    a ``time`` column holds a timestamp, shown to the second unless the table is wide.
    """

    header: str
    get: Callable[[dict[str, Any]], Any]
    priority: int
    min_width: int
    max_width: int | None
    time: bool

    def __init__(
        self,
        header: str,
        get: Callable[[dict[str, Any]], Any],
        priority: int,
        min_width: int,
        max_width: int | None = None,
        time: bool = False,
    ) -> None:
        self.header = header
        self.get = get
        self.priority = priority
        self.min_width = min_width
        self.max_width = max_width
        self.time = time


def safe_text(value: Any) -> str:
    """The value as text with control and direction-override characters escaped (``\\x1b``)."""
    text = "" if value is None else str(value)
    return _UNSAFE.sub(
        lambda m: (
            f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}"
        ),
        text,
    )


def short_time(text: Any, wide: bool) -> str:
    """An ISO timestamp to the second (``2020-09-20T16:16:56Z``), or whole when ``wide``."""
    text = "" if text is None else str(text)
    if wide:
        return text
    found = _SECONDS.match(text)
    return f"{found.group(1)}Z" if found else text


def write_table(
    rows: Iterable[dict[str, Any]],
    out: TextIO,
    columns: Sequence[Column],
    title: str,
    wide: bool = False,
) -> int:
    """Print rows as lines of a table fitted to the terminal; the number of rows."""
    from rich.console import Console  # here: a run that draws no table never loads rich (25 ms)
    from rich.text import Text

    width = None if out.isatty() else NON_TERMINAL_WIDTH
    console = Console(file=out, highlight=False, soft_wrap=False, width=width)
    console.print(Text(title, style="bold"), no_wrap=True, overflow="ellipsis", crop=True)
    count = 0
    iterator = iter(rows)
    while True:
        batch = [_cells(row, columns, wide) for row in islice(iterator, BATCH)]
        if not batch and count:
            break
        _print_batch(console, columns, batch, wide)
        count += len(batch)
        if len(batch) < BATCH:
            break
    return count


def _cells(row: dict[str, Any], columns: Sequence[Column], wide: bool) -> list[str]:
    return [
        safe_text(short_time(column.get(row), wide) if column.time else column.get(row))
        for column in columns
    ]


def _print_batch(
    console: Console, columns: Sequence[Column], batch: list[list[str]], wide: bool
) -> None:
    """The header and the rows of one batch, in the widths that fit the console."""
    from rich.cells import cell_len  # imported by write_table, which alone calls this
    from rich.text import Text

    natural = [
        max([cell_len(column.header)] + [cell_len(row[i]) for row in batch])
        for i, column in enumerate(columns)
    ]
    if wide:
        shown, widths = list(range(len(columns))), natural
    else:
        shown, widths = _layout(columns, natural, console.width)
    header = Text(style="bold")
    for position, i in enumerate(shown):
        header.append_text(_fit(columns[i].header, widths[i], position < len(shown) - 1))
    overflow: Literal["ignore", "ellipsis"] = "ignore" if wide else "ellipsis"
    console.print(header, no_wrap=True, overflow=overflow, crop=not wide)
    for row in batch:
        line = Text()
        for position, i in enumerate(shown):
            line.append_text(_fit(row[i], widths[i], position < len(shown) - 1))
        console.print(line, no_wrap=True, overflow=overflow, crop=not wide)


def _layout(
    columns: Sequence[Column], natural: list[int], total: int
) -> tuple[list[int], list[int]]:
    """Which columns fit in ``total`` cells (by priority; shown in their own order), and their
    widths: each at least its minimum (and never past what its cells need); the space left goes
    to the bounded columns in priority order, up to their natural width and maximum, then to the
    unbounded ones (a message, the details)."""
    by_priority = sorted(range(len(columns)), key=lambda i: columns[i].priority)
    widths = [min(columns[i].min_width, max(natural[i], 1)) for i in range(len(columns))]
    chosen: list[int] = []
    used = 0
    for i in by_priority:
        need = widths[i] + (GAP if chosen else 0)
        if used + need <= total:
            chosen.append(i)
            used += need
    left = total - used
    bounded = [i for i in chosen if columns[i].max_width is not None]
    for i in sorted(bounded, key=lambda i: columns[i].priority) + [
        i for i in chosen if i not in bounded
    ]:
        cap = min(natural[i], columns[i].max_width or natural[i])
        grow = max(0, min(left, cap - widths[i]))
        widths[i] += grow
        left -= grow
    return sorted(chosen), widths


def _fit(text: str, width: int, gap: bool) -> Text:
    """A cell cut (with ``…``) or padded to ``width`` terminal cells, and the gap after it."""
    from rich.text import Text  # imported by write_table, which alone calls this

    cell = Text(text)
    cell.truncate(width, overflow="ellipsis", pad=gap)
    if gap:
        cell.append(" " * GAP)
    return cell


def _endpoint(row: dict[str, Any], ip: str, port: str) -> str:
    """``10.0.0.5:445``; an IPv6 address in brackets, ``[fe80::1]:445``, so the port is clear."""
    address = row.get(ip)
    if address is None:
        return ""
    text = str(address)
    if row.get(port) is None:
        return text
    return f"[{text}]:{row[port]}" if ":" in text else f"{text}:{row[port]}"


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
    """The facts that matter for this kind of event, compactly; a status other than success
    first (a request never answered has none)."""
    parts = []
    if row.get("status") and row["status"] != "STATUS_SUCCESS":
        parts.append(str(row["status"]))
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
    if row.get("task_command"):
        parts.append(f"command={row['task_command']} {row.get('task_arguments') or ''}".rstrip())
    if row.get("target_user"):
        parts.append(f"target={row['target_user']}")
    if row.get("sha256"):
        parts.append(f"sha256={row['sha256']}")
    if row.get("encrypted"):
        parts.append("encrypted")
    return " ".join(parts)


def _object(row: dict[str, Any]) -> str:
    """What the event acted on, as one UNC path (``\\\\FILESRV\\ADMIN$\\psexesvc.exe``): the share
    (a host log's ``\\\\*\\`` named by the logging server) and the path in it, else the server."""
    share = row.get("share") or row.get("share_name")
    if share is None:
        server = row.get("server") or _endpoint(row, "dst_ip", "dst_port")
        return " ".join(str(part) for part in (server, row.get("task_name")) if part)
    share = str(share)
    if share.startswith("\\\\*\\") and row.get("server"):
        share = f"\\\\{row['server']}{share[3:]}"
    path = _target(row)
    return f"{share}\\{path}" if path else share


EVENT_COLUMNS: list[Column] = [
    Column("time", lambda r: r.get("time"), 1, 20, time=True),
    Column("action", lambda r: r.get("action"), 2, 12, 15),
    Column("client", lambda r: _endpoint(r, "src_ip", "src_port"), 3, 17, 47),
    Column("user", _identity, 5, 12, 30),
    Column("object", _object, 4, 24, 80),
    Column("details", _details, 6, 20),
]


def _seen(row: dict[str, Any]) -> str:
    """How many sources saw the message, when more than one did."""
    count = len(row.get("seen_by") or ())
    return str(count) if count > 1 else ""


def _client_host(row: dict[str, Any]) -> str:
    return row.get("src_host") or _endpoint(row, "src_ip", "src_port")


def _server_host(row: dict[str, Any]) -> str:
    return row.get("dst_host") or row.get("server") or _endpoint(row, "dst_ip", "dst_port")


# The timeline of a case: machines and users by their one name (``src_host``, ``principal``).
TIMELINE_COLUMNS: list[Column] = [
    Column("time", lambda r: r.get("time"), 1, 20, time=True),
    Column("action", lambda r: r.get("action"), 2, 12, 15),
    Column("from", _client_host, 3, 15, 40),
    Column("to", _server_host, 4, 15, 40),
    Column("user", lambda r: r.get("principal") or _identity(r), 6, 12, 30),
    Column("object", _object, 5, 24, 80),
    Column("details", _details, 7, 20),
    Column("seen", _seen, 8, 4, 4),
]
