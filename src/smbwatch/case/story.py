"""What the report tells, read from a case: the machines, the moves between them, the files
that crossed the wire, and a timeline that fits a browser.

A move is an action from one machine onto another that lateral movement is made of:
  logon         a network logon (SESSION_SETUP that succeeded, a type-3 4624);
  admin_write   a file opened for writing on an administrative share (``C$``, ``ADMIN$``: a
                CREATE with WriteData/AppendData, a 5145 asking for them);
  service       a service created (svcctl CreateService*, a 4697/7045);
  task          a task registered (SchRpcRegisterTask, atsvc NetrJobAdd, a 4698/4702).
A host record that names no client (a 4697 has only its logon id) takes the client of the
4624 of that logon id on that machine. The same actions seen by both sides count once: a move's
count is the larger of the two sides' counts. A machine's moves onto itself (loopback) are not
moves.

A big case does not fit a page: the timeline holds at most ``TIMELINE_ROWS`` events (every
move and every event an alert names, then an even sample of the rest, said so), each edge at
most ``EDGE_EVENTS`` of its events, the files at most ``FILES`` (executables first).
"""

from __future__ import annotations

from typing import Any, Final

from smbwatch.case.query import Filters, where
from smbwatch.case.store import Case
from smbwatch.events import format_time

TIMELINE_ROWS: Final = 3000
EDGE_EVENTS: Final = 40
FILES: Final = 500
FILE_SIGHTINGS: Final = 20

# Each event's kind of move (NULL: none), and its client where a host record names none.
_MOVES: Final = """
WITH filtered AS (SELECT * FROM events{where}),
clients AS (
    SELECT dst_host, logon_id, any_value(src_host) AS src_host FROM events
    WHERE source = 'host' AND event_code = 4624 AND logon_id IS NOT NULL
        AND src_host IS NOT NULL
    GROUP BY ALL)
SELECT e.* REPLACE (coalesce(e.src_host, c.src_host) AS src_host), CASE
    WHEN e.source = 'network' AND e.action = 'logon'
        AND coalesce(e.status, 'STATUS_SUCCESS') = 'STATUS_SUCCESS' THEN 'logon'
    WHEN e.source = 'host' AND e.event_code = 4624 THEN 'logon'
    WHEN e.action IN ('open', 'create', 'access_check') AND ends_with(upper(e.share_name), '$')
        AND upper(e.share_name) <> 'IPC$' AND e.access_mask & 6 <> 0 THEN 'admin_write'
    WHEN starts_with(e.rpc_operation, 'CreateService') OR e.action = 'service_install'
        THEN 'service'
    WHEN e.rpc_operation IN ('SchRpcRegisterTask', 'NetrJobAdd')
        OR e.action IN ('task_create', 'task_update') THEN 'task'
    END AS move
FROM filtered e
LEFT JOIN clients c ON e.source = 'host' AND c.dst_host = e.dst_host AND c.logon_id = e.logon_id
"""
# What a row of the page shows of an event.
_ROW: Final = """{
    'time': epoch_us(time), 'source': source, 'what': coalesce(rpc_operation, action),
    'code': event_code, 'src': src_host, 'dst': dst_host, 'user': principal,
    'share': share_name, 'path': coalesce(path, pipe),
    'object': coalesce(service_name, task_name), 'status': coalesce(status, rpc_status),
    'file': source_file, 'ref': source_ref, 'move': move,
    'linked': coalesce(json_array_length(links), 0), 'filled': json_keys(filled_from),
    'missing': missing_from_log}"""
_EDGES: Final = f"""
SELECT src_host, dst_host, move,
    greatest(count(*) FILTER (WHERE source = 'network'), count(*) FILTER (WHERE source = 'host')),
    min(epoch_us(time)), max(epoch_us(time)),
    list({_ROW} ORDER BY time)[1:{EDGE_EVENTS}]
FROM moves
WHERE move IS NOT NULL AND src_host IS NOT NULL AND dst_host IS NOT NULL
    AND src_host <> dst_host AND src_ip IS DISTINCT FROM '::1' AND NOT starts_with(src_ip, '127.')
GROUP BY ALL
"""
_FILES: Final = f"""
SELECT coalesce(sha256, '') AS sha256, any_value(magic), max(coalesce(bytes_seen, file_size)),
    list(DISTINCT path), count(*),
    list({{'time': epoch_us(time), 'src': src_host, 'dst': dst_host, 'user': principal,
        'share': share_name, 'path': path, 'direction': direction, 'file': source_file,
        'ref': source_ref}} ORDER BY time)[1:{FILE_SIGHTINGS}]
FROM moves
WHERE source = 'network' AND action = 'close' AND direction IS NOT NULL
    AND (sha256 IS NOT NULL OR magic IS NOT NULL)
GROUP BY sha256, CASE WHEN sha256 IS NULL THEN dst_host || share || path END
ORDER BY any_value(magic) = 'PE' DESC, min(time)
LIMIT {FILES}
"""


def gather(case: Case, filters: Filters, evidence: set[tuple[str, int]]) -> dict[str, Any]:
    """The report's data (JSON-ready), for the events that pass ``filters``; ``evidence``:
    the (source file, source ref) of the events the alerts shown name, kept in the timeline
    first."""
    clause = where(case, filters)
    parameters = clause.parameters
    case.db.execute(
        f"CREATE OR REPLACE TEMP TABLE moves AS {_MOVES.format(where=clause.sql())}", parameters
    )
    try:
        return {
            "hosts": _hosts(case),
            "edges": _edges(case),
            "timeline": _timeline(case, evidence),
            "files": _files(case),
            "inputs": _inputs(case),
        }
    finally:
        case.db.execute("DROP TABLE IF EXISTS moves")


def _time(micros: int | None) -> str | None:
    return format_time(micros) if micros is not None else None


def _hosts(case: Case) -> list[dict[str, Any]]:
    return [
        {"host": host, "addresses": addresses, "aliases": aliases}
        for host, addresses, aliases in case.rows(
            "SELECT host, addresses, aliases FROM hosts ORDER BY host"
        )
    ]


def _inputs(case: Case) -> list[dict[str, Any]]:
    sql = """SELECT path, format, events, epoch_us(first_time), epoch_us(last_time)
        FROM inputs ORDER BY input_id"""
    return [
        {"path": path, "format": kind, "events": count, "first": _time(a), "last": _time(b)}
        for path, kind, count, a, b in case.rows(sql)
    ]


def _edges(case: Case) -> list[dict[str, Any]]:
    """One edge per client and server: its count of each kind of move, first and last time,
    and its events (the first ``EDGE_EVENTS``)."""
    edges: dict[tuple[str, str], dict[str, Any]] = {}
    for src, dst, move, count, first, last, rows in case.rows(_EDGES):
        edge = edges.setdefault(
            (src, dst),
            {"src": src, "dst": dst, "moves": {}, "first": first, "last": last, "events": []},
        )
        edge["moves"][move] = count
        edge["first"], edge["last"] = min(edge["first"], first), max(edge["last"], last)
        edge["events"].extend(rows)
    found = []
    for edge in sorted(edges.values(), key=lambda e: (e["first"], e["src"], e["dst"])):
        edge["events"] = [_plain(r) for r in sorted(edge["events"], key=lambda r: r["time"])]
        del edge["events"][EDGE_EVENTS:]
        edge["first"], edge["last"] = _time(edge["first"]), _time(edge["last"])
        found.append(edge)
    return found


def _timeline(case: Case, evidence: set[tuple[str, int]]) -> dict[str, Any]:
    """Every event when they fit; else the moves and the alerts' evidence, and a sample."""
    total = case.rows("SELECT count(*) FROM moves")[0][0]
    if total <= TIMELINE_ROWS:
        sql = f"SELECT {_ROW} FROM moves ORDER BY time, source_file, source_ref"
        rows = [r for (r,) in case.rows(sql)]
        return {"rows": [_plain(r) for r in rows], "total": total, "sampled": False}
    case.db.execute("CREATE OR REPLACE TEMP TABLE named (file VARCHAR, ref UBIGINT)")
    if evidence:
        case.db.executemany("INSERT INTO named VALUES (?, ?)", sorted(evidence))
    marked = """SELECT m.*, m.move IS NOT NULL OR n.ref IS NOT NULL AS kept FROM moves m
        LEFT JOIN (SELECT DISTINCT file, ref FROM named) n
            ON n.file = m.source_file AND n.ref = m.source_ref"""
    kept = case.rows(
        f"SELECT {_ROW} FROM ({marked}) WHERE kept ORDER BY time LIMIT {TIMELINE_ROWS}"
    )
    room = TIMELINE_ROWS - len(kept)
    sample = []
    if room > 0:
        sample = case.rows(
            f"SELECT {_ROW} FROM (SELECT * FROM ({marked}) WHERE NOT kept) "
            f"USING SAMPLE reservoir({room} ROWS) REPEATABLE (13)"
        )
    case.db.execute("DROP TABLE named")
    rows = sorted((r for (r,) in [*kept, *sample]), key=lambda r: r["time"])
    return {"rows": [_plain(r) for r in rows], "total": total, "sampled": True}


def _files(case: Case) -> list[dict[str, Any]]:
    found = []
    for sha256, magic, size, names, count, sightings in case.rows(_FILES):
        found.append(
            {
                "sha256": sha256 or None,
                "magic": magic,
                "size": size,
                "names": [n for n in names if n is not None],
                "count": count,
                "sightings": [_plain(s) for s in sorted(sightings, key=lambda s: s["time"])],
            }
        )
    return found


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON: its time as ISO 8601."""
    out = dict(row)
    out["time"] = _time(out["time"])
    return out
