"""The wire and the host joined: a network event and a host record of the same action are linked,
what one side lacks is filled from the other, and what the wire saw but a server's log that
covers the moment does not hold is marked.

Two records are of the same action when (MS-SMB2 and the Windows audit events say the same
thing of it):
  logon    a network SESSION_SETUP (or an authenticated DCE/RPC Bind/AlterContext on a
           connection with no SMB session) and a 4624 from the same client address and port
           (a 4624's ``IpPort`` is the client's TCP source port);
  share    a TREE_CONNECT and a 5140 of that address, port and share;
  file     a CREATE (``open``/``create``) and a 5145 of that address, port, share and path;
  service  a svcctl CreateService* and a 4697/7045 logged by the server the call went to;
  task     a SchRpcRegisterTask or atsvc NetrJobAdd and a 4698/4702 logged by that server;
and their times agree within ``TOLERANCE`` once the offset between the two sources' clocks
(``clocks.LOGON_PORT_PAIRS``, estimated from the connections both saw) is taken out. Each record
takes the nearest record of the other side that takes it as its nearest too.

What is filled (each filled field named in ``filled_from``; nothing a source said is replaced):
  onto network events   user, domain, logon_id: per SMB session, from the host records linked
                        to that session (4624, 5140, 5145); else per connection, from the host
                        records of its client address and port while it lasted (one logon
                        id, or one user); service_name, image_path, start_type onto an
                        encrypted CreateService from its 4697/7045; task_name, task_command,
                        task_arguments onto a task registration from its 4698/4702;
  onto host 5145s       the server's address (dst_ip), and from the file's close on the wire
                        the bytes written (bytes), magic and sha256.

``missing_from_log`` marks a network event that should have left a record on its server (an
open for writing on an admin share, ``X$``/``ADMIN$``/``IPC$``: a 5145; a successful
CreateService: a 4697/7045) where that server's log covers the moment but holds none: auditing
turned off, or the log cleared. A log covers a moment when a host input holding records the
server logged has records from more than a second before it to more than a second after it (of
any computer: the readers keep only the records smbwatch reads, and an export of several
machines' logs is taken to cover each of them).

The result is the table ``correlation`` (one row per event that has something), which the case's
views join: the events read back carry ``links``, ``filled_from``, ``missing_from_log`` and the
filled values.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from smbwatch.case.clocks import LOGON_PORT_PAIRS, SECOND
from smbwatch.case.store import FILLED, Case

TOLERANCE: Final = 3 * SECOND  # host clocks have whole seconds; an offset estimate, about ±0.5 s
COVERED_BEYOND: Final = SECOND  # a log covers a moment with records a second before and after
WRITE_ACCESS: Final = 0x2 | 0x4  # FILE_WRITE_DATA | FILE_APPEND_DATA (MS-SMB2 2.2.13.1.1)
# Whether the case holds both sides: every link, fill and mark needs a network event and a
# host record (a log covers a moment only with records), so a case of one side has none.
_BOTH_SIDES: Final = """
SELECT EXISTS (SELECT 1 FROM event_rows WHERE source = 'network')
    AND EXISTS (SELECT 1 FROM event_rows WHERE source = 'host')
"""
_OFFSETS: Final = f"CREATE OR REPLACE TEMP TABLE c_offsets AS {LOGON_PORT_PAIRS}"
# The records that can be linked, first copies only, times as corrected, in µs.
_WIRE: Final = """
CREATE OR REPLACE TEMP TABLE c_wire AS
SELECT * FROM (
    SELECT message_key AS key, input_id, epoch_us(time) AS t, source_file, source_ref, action,
        src_ip, src_port, dst_ip, dst_host, conn_id, session_id, file_key,
        upper(share_name) AS share, lower(trim(coalesce(path, pipe), '\\')) AS target,
        service_name, image_path, start_type, task_name, task_command, task_arguments,
        status, rpc_status, access_mask,
        CASE
            WHEN action = 'logon' AND coalesce(status, 'STATUS_SUCCESS') = 'STATUS_SUCCESS'
                THEN 'logon'
            WHEN action = 'rpc_call' AND session_id IS NULL
                AND rpc_operation IN ('Bind', 'AlterContext') THEN 'logon'
            WHEN action = 'tree_connect' THEN 'share'
            WHEN action IN ('open', 'create') THEN 'file'
            WHEN action = 'rpc_call' AND starts_with(rpc_operation, 'CreateService') THEN 'service'
            WHEN action = 'rpc_call' AND rpc_operation IN ('SchRpcRegisterTask', 'NetrJobAdd')
                THEN 'task'
        END AS kind,
        CASE WHEN starts_with(rpc_operation, 'CreateService') THEN upper(service_name)
            WHEN task_name IS NOT NULL THEN lower(ltrim(task_name, '\\')) END AS name
    FROM sightings WHERE first_copy AND source = 'network')
WHERE kind IS NOT NULL
"""
_HOST: Final = """
CREATE OR REPLACE TEMP TABLE c_host AS
SELECT message_key AS key, input_id, epoch_us(time) AS t, source_file, source_ref, event_code,
    src_ip, src_port, dst_ip, dst_host, upper(share_name) AS share,
    lower(trim(path, '\\')) AS target, "user", domain, logon_id, service_name, image_path,
    start_type, task_name, task_command, task_arguments,
    CASE event_code WHEN 4624 THEN 'logon' WHEN 5140 THEN 'share' WHEN 5145 THEN 'file'
        WHEN 4697 THEN 'service' WHEN 7045 THEN 'service'
        WHEN 4698 THEN 'task' WHEN 4702 THEN 'task' END AS kind,
    CASE WHEN event_code IN (4697, 7045) THEN upper(service_name)
        WHEN task_name IS NOT NULL THEN lower(ltrim(task_name, '\\')) END AS name
FROM sightings
WHERE first_copy AND source = 'host' AND event_code IN (4624, 5140, 5145, 4697, 7045, 4698, 4702)
"""
# Candidate pairs: by client address and port (logon, share, file) or by the server (service,
# task), the same kind, share, path or name, within the tolerance once the clocks' offset is out.
_PAIRS: Final = f"""
CREATE OR REPLACE TEMP TABLE c_pairs AS
WITH joined AS (
    SELECT w.key AS wkey, h.key AS hkey, w.kind, h.event_code, h.t - w.t AS delta,
        coalesce(o.offset_us, 0) AS offset_us, w.t AS wt, h.t AS ht, h.source_ref AS href
    FROM c_wire w
    JOIN c_host h ON h.kind = w.kind AND h.src_ip = w.src_ip AND h.src_port = w.src_port
    LEFT JOIN c_offsets o ON o.wire_input = w.input_id AND o.host_input = h.input_id
    WHERE w.kind IN ('logon', 'share', 'file')
        AND (w.kind = 'logon' OR h.share = w.share)
        AND (w.kind <> 'file' OR h.target = w.target)
    UNION ALL
    SELECT w.key, h.key, w.kind, h.event_code, h.t - w.t, coalesce(o.offset_us, 0), w.t, h.t,
        h.source_ref
    FROM c_wire w
    JOIN c_host h ON h.kind = w.kind AND h.dst_host = w.dst_host
    LEFT JOIN c_offsets o ON o.wire_input = w.input_id AND o.host_input = h.input_id
    WHERE w.kind IN ('service', 'task')
        AND (w.name IS NULL OR h.name IS NULL OR w.name = h.name OR ends_with(h.name, w.name))
)
SELECT * FROM joined WHERE abs(delta - offset_us) <= {TOLERANCE}
"""
# The candidates in the order links are chosen: each network event, earliest first, takes the
# nearest record of each event id left (host records of whole seconds tie: the first logged).
_CANDIDATES: Final = """
SELECT wkey, hkey, event_code FROM c_pairs
ORDER BY wt, wkey, abs(delta - offset_us), ht, href, hkey
"""
_LINKS: Final = """
CREATE OR REPLACE TEMP TABLE c_links AS
SELECT p.* FROM c_pairs p JOIN c_chosen c USING (wkey, hkey)
"""
# Who logged on, per SMB session (from the records linked to it) and per connection (from the
# records of its address and port while it lasted): the 4624's names first.
_SESSIONS: Final = """
CREATE OR REPLACE TEMP TABLE c_sessions AS
SELECT w.conn_id, w.session_id,
    count(DISTINCT h.logon_id) AS logons, count(DISTINCT upper(h."user")) AS users,
    arg_min(h.logon_id, h.event_code) AS logon_id, arg_min(h."user", h.event_code) AS "user",
    arg_min(h.domain, h.event_code) AS domain
FROM c_links l
JOIN c_wire w ON w.key = l.wkey
JOIN c_host h ON h.key = l.hkey
WHERE h.event_code IN (4624, 5140, 5145) AND w.session_id IS NOT NULL AND h."user" IS NOT NULL
GROUP BY ALL
"""
_CONNECTIONS: Final = f"""
CREATE OR REPLACE TEMP TABLE c_connections AS
WITH spans AS (
    SELECT conn_id, src_ip, src_port, min(input_id) AS input_id,
        min(epoch_us(time)) AS first, max(epoch_us(time)) AS last
    FROM sightings
    WHERE first_copy AND source = 'network' AND conn_id IS NOT NULL AND src_port IS NOT NULL
    GROUP BY ALL)
SELECT s.conn_id,
    count(DISTINCT h.logon_id) AS logons, count(DISTINCT upper(h."user")) AS users,
    arg_min(h.logon_id, h.event_code) AS logon_id, arg_min(h."user", h.event_code) AS "user",
    arg_min(h.domain, h.event_code) AS domain
FROM spans s
JOIN c_host h ON h.src_ip = s.src_ip AND h.src_port = s.src_port
LEFT JOIN c_offsets o ON o.wire_input = s.input_id AND o.host_input = h.input_id
WHERE h.kind IN ('logon', 'share', 'file') AND h."user" IS NOT NULL
    AND h.t - coalesce(o.offset_us, 0) BETWEEN s.first - {TOLERANCE} AND s.last + {TOLERANCE}
GROUP BY ALL
"""
# What each record gains, one row per gain (merged per record at the end).
_GAINS: Final = """
CREATE OR REPLACE TEMP TABLE c_gains AS
WITH logons AS (
    SELECT e.message_key AS key, e."user" AS had_user, e.logon_id AS had_logon,
        CASE WHEN s.conn_id IS NOT NULL THEN s.users ELSE c.users END AS users,
        CASE WHEN s.conn_id IS NOT NULL THEN s.logons ELSE c.logons END AS logons,
        CASE WHEN s.conn_id IS NOT NULL THEN s."user" ELSE c."user" END AS "user",
        CASE WHEN s.conn_id IS NOT NULL THEN s.domain ELSE c.domain END AS domain,
        CASE WHEN s.conn_id IS NOT NULL THEN s.logon_id ELSE c.logon_id END AS logon_id
    FROM sightings e
    LEFT JOIN c_sessions s ON s.conn_id = e.conn_id AND s.session_id = e.session_id
    LEFT JOIN c_connections c ON c.conn_id = e.conn_id
    WHERE e.first_copy AND e.source = 'network'
        AND (s.conn_id IS NOT NULL OR c.conn_id IS NOT NULL))
SELECT key, 'network' AS source,
    CASE WHEN had_user IS NULL AND users = 1 THEN "user" END AS "user",
    CASE WHEN had_user IS NULL AND users = 1 THEN domain END AS domain,
    CASE WHEN had_logon IS NULL AND logons = 1 THEN logon_id END AS logon_id
FROM logons
UNION ALL BY NAME
SELECT w.key, 'network' AS source,
    CASE WHEN w.service_name IS NULL THEN arg_min(h.service_name, h.event_code) END
        AS service_name,
    CASE WHEN w.image_path IS NULL THEN arg_min(h.image_path, h.event_code) END AS image_path,
    CASE WHEN w.start_type IS NULL THEN arg_min(h.start_type, h.event_code) END AS start_type,
    CASE WHEN w.task_name IS NULL THEN arg_min(h.task_name, h.event_code) END AS task_name,
    CASE WHEN w.task_command IS NULL THEN arg_min(h.task_command, h.event_code) END
        AS task_command,
    CASE WHEN w.task_arguments IS NULL THEN arg_min(h.task_arguments, h.event_code) END
        AS task_arguments
FROM c_links l
JOIN c_wire w ON w.key = l.wkey
JOIN c_host h ON h.key = l.hkey
WHERE w.kind IN ('service', 'task')
GROUP BY w.key, w.service_name, w.image_path, w.start_type, w.task_name, w.task_command,
    w.task_arguments
UNION ALL BY NAME
SELECT h.key, 'host' AS source,
    CASE WHEN h.dst_ip IS NULL THEN w.dst_ip END AS dst_ip,
    closed.bytes_seen AS bytes, closed.magic, closed.sha256
FROM c_links l
JOIN c_wire w ON w.key = l.wkey
JOIN c_host h ON h.key = l.hkey
LEFT JOIN (
    SELECT file_key, max(bytes_seen) AS bytes_seen, any_value(magic) AS magic,
        any_value(sha256) AS sha256
    FROM sightings
    WHERE first_copy AND source = 'network' AND action = 'close' AND direction = 'upload'
        AND file_key IN (SELECT file_key FROM c_wire WHERE kind = 'file')
    GROUP BY file_key) closed ON closed.file_key = w.file_key
WHERE w.kind = 'file'
"""
# What a server's logs cover: a host input that holds records the server logged, from its first
# record to its last (of any computer: an export of several machines' logs covers each of them).
_MISSING: Final = f"""
CREATE OR REPLACE TEMP TABLE c_missing AS
WITH covered AS (
    SELECT input_id, min(epoch_us(time)) AS first, max(epoch_us(time)) AS last
    FROM sightings WHERE source = 'host' GROUP BY ALL),
logged AS (
    SELECT DISTINCT input_id, dst_host FROM sightings
    WHERE source = 'host' AND dst_host IS NOT NULL),
expected AS (
    SELECT * FROM c_wire
    WHERE (kind = 'file' AND ends_with(share, '$') AND access_mask & {WRITE_ACCESS} <> 0
            AND coalesce(status, 'STATUS_SUCCESS') = 'STATUS_SUCCESS')
        OR (kind = 'service' AND coalesce(rpc_status, 'ERROR_SUCCESS') = 'ERROR_SUCCESS'))
SELECT DISTINCT w.key, 'network' AS source, true AS missing_from_log
FROM expected w
JOIN logged l ON l.dst_host = w.dst_host
JOIN covered c ON c.input_id = l.input_id
LEFT JOIN c_offsets o ON o.wire_input = w.input_id AND o.host_input = c.input_id
WHERE c.first - coalesce(o.offset_us, 0) < w.t - {COVERED_BEYOND}
    AND c.last - coalesce(o.offset_us, 0) > w.t + {COVERED_BEYOND}
    AND w.key NOT IN (SELECT wkey FROM c_links)
"""
# The links of each record, to the other side's records, in time order.
_LINK_LISTS: Final = """
CREATE OR REPLACE TEMP TABLE c_link_lists AS
SELECT l.wkey AS key, 'network' AS source, to_json(list(json_object(
        'source_file', h.source_file, 'source_ref', h.source_ref, 'event_code', h.event_code,
        'time_delta', l.delta / 1e6, 'clock_offset', l.offset_us / 1e6) ORDER BY h.t, h.key))
    AS links
FROM c_links l JOIN c_host h ON h.key = l.hkey
GROUP BY l.wkey
UNION ALL
SELECT l.hkey, 'host', to_json(list(json_object(
        'source_file', w.source_file, 'source_ref', w.source_ref, 'action', w.action,
        'time_delta', -l.delta / 1e6, 'clock_offset', -l.offset_us / 1e6) ORDER BY w.t, w.key))
FROM c_links l JOIN c_wire w ON w.key = l.wkey
GROUP BY l.hkey
"""
_FILLED_FROM: Final = ", ".join(
    f"{{'k': '{name}', 'v': CASE WHEN \"{name}\" IS NOT NULL THEN other END}}" for name in FILLED
)
_STORE: Final = f"""
INSERT INTO correlation
SELECT key, links,
    CASE WHEN len(filled) > 0 THEN to_json(map_from_entries(filled)) END AS filled_from,
    {", ".join(f'"{name}"' for name in FILLED)}, missing_from_log
FROM (
    SELECT *, list_filter([{_FILLED_FROM}], lambda x: x.v IS NOT NULL) AS filled
    FROM (
        SELECT key, CASE any_value(source) WHEN 'network' THEN 'host' ELSE 'network' END AS other,
            any_value(links) AS links,
            {", ".join(f'any_value("{name}") AS "{name}"' for name in FILLED)},
            bool_or(missing_from_log) AS missing_from_log
        FROM (
            SELECT * FROM c_link_lists
            UNION ALL BY NAME SELECT * FROM c_gains
            UNION ALL BY NAME SELECT * FROM c_missing)
        GROUP BY key))
WHERE links IS NOT NULL OR len(filled) > 0 OR missing_from_log
"""
_STEPS: Final = (_SESSIONS, _CONNECTIONS, _GAINS, _MISSING, _LINK_LISTS, _STORE)
_TEMPORARY: Final = (
    "c_offsets",
    "c_wire",
    "c_host",
    "c_pairs",
    "c_chosen",
    "c_links",
    "c_sessions",
    "c_connections",
    "c_gains",
    "c_missing",
    "c_link_lists",
)


def correlate(case: Case) -> None:
    """Rebuild ``correlation`` from the whole case (names resolved, clocks corrected first).

    Within the caller's transaction; the work tables are temporary and dropped at the end."""
    db = case.db
    db.execute("DELETE FROM correlation")
    if not case.rows(_BOTH_SIDES)[0][0]:
        return  # nothing to link: a case of captures alone, or of logs alone
    for step in (_OFFSETS, _WIRE, _HOST, _PAIRS):
        db.execute(step)
    wires, hosts = _choose(db.execute(_CANDIDATES).fetchall())
    chosen = pa.table({"wkey": pa.array(wires, pa.uint64()), "hkey": pa.array(hosts, pa.uint64())})
    db.register("chosen", chosen)
    db.execute("CREATE OR REPLACE TEMP TABLE c_chosen AS SELECT * FROM chosen")
    db.unregister("chosen")
    db.execute(_LINKS)
    for step in _STEPS:
        db.execute(step)
    for table in _TEMPORARY:
        db.execute(f"DROP TABLE IF EXISTS {table}")


def _choose(candidates: list[tuple[int, int, int]]) -> tuple[list[int], list[int]]:
    """The links, from candidate (network event, host record, event id) pairs in order of
    preference: a network event takes one record of each event id (a CreateService its 4697 and
    its 7045), a record one network event. Taken in time order, records that tie (a second's
    worth of 5145s for one path) go to the network events in the order they were logged."""
    taken: set[tuple[int, int]] = set()
    used: set[int] = set()
    wires: list[int] = []
    hosts: list[int] = []
    for wire, host, code in candidates:
        if host in used or (wire, code) in taken:
            continue
        used.add(host)
        taken.add((wire, code))
        wires.append(wire)
        hosts.append(host)
    return wires, hosts
