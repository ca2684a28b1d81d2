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

A big case does not fit a page: the timeline holds at most ``TIMELINE_ROWS`` events (the
events the alerts name, then the other moves, logons last, then an even sample of the rest, said
so: on a big case logons alone would fill it with its first minutes), each edge at
most ``EDGE_EVENTS`` of its events, the graph at most ``EDGES`` edges (the incidents' first),
the files at most ``FILES`` (executables first).
"""

from __future__ import annotations

from typing import Any, Final

import pyarrow as pa

from smbwatch.case.filters import Filters
from smbwatch.case.query import where
from smbwatch.case.store import Case
from smbwatch.events import format_time

TIMELINE_ROWS: Final = 3000
EDGES: Final = 300
EDGE_EVENTS: Final = 40
FILES: Final = 500
FILE_SIGHTINGS: Final = 20

# The client of each logon a server recorded. A table of its own, made before the moves: the
# two readings of the events view in one statement ran out of the case's memory (625,000 events).
_CLIENTS: Final = """
CREATE OR REPLACE TEMP TABLE clients AS
SELECT dst_host, logon_id, min(src_host) AS src_host FROM events
WHERE source = 'host' AND event_code = 4624 AND logon_id IS NOT NULL AND src_host IS NOT NULL
GROUP BY ALL
"""
# Each event's kind of move (NULL: none), and its client where a host record names none.
_MOVES: Final = """
WITH filtered AS (SELECT * FROM events{where})
SELECT e.time, e.source, e.action, e.event_code, coalesce(e.src_host, c.src_host) AS src_host,
    e.dst_host, e.src_ip, e.principal, e.share_name, e.share, coalesce(e.path, e.pipe) AS path,
    e.rpc_operation, coalesce(e.service_name, e.task_name) AS object,
    coalesce(e.status, e.rpc_status) AS status, e.source_file, e.source_ref,
    coalesce(json_array_length(e.links), 0) AS linked, json_keys(e.filled_from) AS filled,
    e.missing_from_log, e.sha256, e.magic, coalesce(e.bytes_seen, e.file_size) AS size,
    e.direction, CASE
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
    'share': share_name, 'path': path, 'object': object, 'status': status,
    'file': source_file, 'ref': source_ref, 'move': move, 'linked': linked, 'filled': filled,
    'missing': missing_from_log}"""
# The order of events on the page: by time, then wholly by what a row shows (rows alike in time
# came out of the database in an order of its plan's choosing: a report of the same case
# differed from one run to the next).
_ORDER: Final = f"time, source_file, source_ref, {_ROW}"
# Each client and server's count of each kind of move, first and last time.
_EDGE_MOVES: Final = """
CREATE OR REPLACE TEMP TABLE edge_moves AS
SELECT src_host, dst_host, move,
    greatest(count(*) FILTER (WHERE source = 'network'),
        count(*) FILTER (WHERE source = 'host')) AS n,
    min(epoch_us(time)) AS first, max(epoch_us(time)) AS last
FROM moves
WHERE move IS NOT NULL AND src_host IS NOT NULL AND dst_host IS NOT NULL
    AND src_host <> dst_host AND src_ip IS DISTINCT FROM '::1' AND NOT starts_with(src_ip, '127.')
GROUP BY ALL
"""
# The edges shown, in this order: the incidents' (``wanted``), then those with more than logons,
# then the busiest, the earliest; and how many edges there are. Ranked by the database: a
# Security log of other machines' logons makes an edge of each (455,451 in bench_story's case),
# which took 2.5 s and 260 MB made into Python objects to be ranked.
_CHOSEN_EDGES: Final = f"""
SELECT e.src_host, e.dst_host, e.first, e.last, e.total
FROM (
    SELECT src_host, dst_host, sum(n) AS busy, bool_and(move = 'logon') AS logons,
        min(first) AS first, max(last) AS last, count(*) OVER () AS total
    FROM edge_moves GROUP BY src_host, dst_host) e
LEFT JOIN (SELECT DISTINCT src_host, dst_host FROM wanted) w
    ON w.src_host = e.src_host AND w.dst_host = e.dst_host
ORDER BY w.src_host IS NULL, e.logons, e.busy DESC, e.first, e.src_host, e.dst_host
LIMIT {EDGES}
"""
_CHOSEN_MOVES: Final = """
SELECT src_host, dst_host, move, n FROM edge_moves JOIN chosen USING (src_host, dst_host)
ORDER BY move
"""
_EDGE_EVENTS: Final = f"""
SELECT src_host, dst_host, list(row ORDER BY k)
FROM (
    SELECT src_host, dst_host, {_ROW} AS row,
        row_number() OVER (PARTITION BY src_host, dst_host ORDER BY {_ORDER}) AS k
    FROM moves m JOIN chosen USING (src_host, dst_host)
    WHERE m.move IS NOT NULL)
WHERE k <= {EDGE_EVENTS}
GROUP BY ALL
"""
_FILES: Final = f"""
SELECT coalesce(sha256, '') AS sha256, min(magic), max(size),
    list(DISTINCT path ORDER BY path), count(*),
    list({{'time': epoch_us(time), 'src': src_host, 'dst': dst_host, 'user': principal,
        'share': share_name, 'path': path, 'direction': direction, 'file': source_file,
        'ref': source_ref}} ORDER BY {_ORDER})[1:{FILE_SIGHTINGS}]
FROM moves
WHERE source = 'network' AND action = 'close' AND direction IS NOT NULL
    AND (sha256 IS NOT NULL OR magic IS NOT NULL)
GROUP BY sha256, CASE WHEN sha256 IS NULL THEN dst_host || share || path END
ORDER BY min(magic) = 'PE' DESC, min(time), 1, min(dst_host || share || path)
LIMIT {FILES}
"""


def gather(
    case: Case,
    filters: Filters,
    evidence: set[tuple[str, int]],
    wanted: set[tuple[str, str]],
) -> dict[str, Any]:
    """The report's data (JSON-ready), for the events that pass ``filters``; ``evidence``:
    the (source file, source ref) of the events the alerts shown name, kept in the timeline
    first; ``wanted``: the (client, server) of the incidents shown, whose moves are kept."""
    clause = where(case, filters)
    parameters = clause.parameters
    try:
        case.db.execute(_CLIENTS)
        case.db.execute(
            f"CREATE OR REPLACE TEMP TABLE moves AS {_MOVES.format(where=clause.sql())}",
            parameters,
        )
        edges, edges_total = _edges(case, wanted)
        return {
            "edges": edges,
            "edges_total": edges_total,
            "hosts": _hosts(case, {h for e in edges for h in (e["src"], e["dst"])}),
            "timeline": _timeline(case, evidence),
            "files": _files(case),
            "inputs": _inputs(case),
        }
    finally:
        case.db.execute("DROP TABLE IF EXISTS edge_moves")
        case.db.execute("DROP TABLE IF EXISTS moves")
        case.db.execute("DROP TABLE IF EXISTS clients")


def _time(micros: int | None) -> str | None:
    return format_time(micros) if micros is not None else None


def _hosts(case: Case, shown: set[str]) -> list[dict[str, Any]]:
    """The addresses and aliases of the machines the graph shows."""
    return [
        {"host": host, "addresses": addresses, "aliases": aliases}
        for host, addresses, aliases in case.rows(
            "SELECT host, addresses, aliases FROM hosts ORDER BY host"
        )
        if host in shown
    ]


def _inputs(case: Case) -> list[dict[str, Any]]:
    sql = """SELECT path, format, events, epoch_us(first_time), epoch_us(last_time)
        FROM inputs ORDER BY input_id"""
    return [
        {"path": path, "format": kind, "events": count, "first": _time(a), "last": _time(b)}
        for path, kind, count, a, b in case.rows(sql)
    ]


def _edges(case: Case, wanted: set[tuple[str, str]]) -> tuple[list[dict[str, Any]], int]:
    """One edge per client and server: its count of each kind of move, first and last time,
    and its first ``EDGE_EVENTS`` events. At most ``EDGES``, in this order: the ``wanted`` ones
    (the incidents'), then those with more than logons, then the busiest, the earliest (ranked
    by the database: ``_CHOSEN_EDGES``); and how many there are in all."""
    case.db.execute(_EDGE_MOVES)
    case.db.register("wanted", _pairs(sorted(wanted)))
    try:
        found = case.rows(_CHOSEN_EDGES)
    finally:
        case.db.unregister("wanted")
    edges = {
        (src, dst): {
            "src": src,
            "dst": dst,
            "moves": {},
            "first": first,
            "last": last,
            "events": [],
        }
        for src, dst, first, last, _ in found
    }
    case.db.register("chosen", _pairs(list(edges)))
    try:
        for src, dst, move, count in case.rows(_CHOSEN_MOVES):
            edges[(src, dst)]["moves"][move] = count
        for src, dst, rows in case.rows(_EDGE_EVENTS):
            edges[(src, dst)]["events"] = [_plain(r) for r in rows]
    finally:
        case.db.unregister("chosen")
    chosen = list(edges.values())
    for edge in chosen:
        edge["first"], edge["last"] = _time(edge["first"]), _time(edge["last"])
    return chosen, found[0][4] if found else 0


def _pairs(pairs: list[tuple[str, str]]) -> pa.Table:
    """(client, server) pairs as a table to join."""
    return pa.table(
        {
            "src_host": pa.array([src for src, _ in pairs], pa.string()),
            "dst_host": pa.array([dst for _, dst in pairs], pa.string()),
        }
    )


def _timeline(case: Case, evidence: set[tuple[str, int]]) -> dict[str, Any]:
    """Every event when they fit; else the alerts' evidence, the moves (logons last) and a
    sample."""
    total = case.rows("SELECT count(*) FROM moves")[0][0]
    if total <= TIMELINE_ROWS:
        sql = f"SELECT {_ROW} FROM moves ORDER BY {_ORDER}"
        rows = [r for (r,) in case.rows(sql)]
        return {"rows": [_plain(r) for r in rows], "total": total, "sampled": False}
    files, refs = zip(*sorted(evidence), strict=True) if evidence else ((), ())
    named = pa.table({"file": pa.array(files, pa.string()), "ref": pa.array(refs, pa.uint64())})
    case.db.register("named", named)
    marked = """SELECT m.*, CASE WHEN n.ref IS NOT NULL THEN 0 WHEN m.move <> 'logon' THEN 1
            WHEN m.move IS NOT NULL THEN 2 END AS priority FROM moves m
        LEFT JOIN (SELECT DISTINCT file, ref FROM named) n
            ON n.file = m.source_file AND n.ref = m.source_ref"""
    kept = case.rows(
        f"SELECT {_ROW} FROM ({marked}) WHERE priority IS NOT NULL "
        f"ORDER BY priority, {_ORDER} LIMIT {TIMELINE_ROWS}"
    )
    room = TIMELINE_ROWS - len(kept)
    sample = []
    if room > 0:
        sample = case.rows(  # rows chosen by a hash of what they show: the same every run
            f"SELECT {_ROW} FROM ({marked}) WHERE priority IS NULL "
            f"ORDER BY hash({_ROW}), {_ORDER} LIMIT {room}"
        )
    case.db.unregister("named")
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
