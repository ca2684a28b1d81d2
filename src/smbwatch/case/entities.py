"""One name per machine and per user, from what the inputs themselves say.

Hosts. Each address and each name is a node; evidence joins them:
  strong (what the server side or the machine itself says):
    unc            a network event's server name (the UNC path, NTLMSSP's target) at its dst_ip
    spn            the host of a Kerberos service principal name (``cifs/WORKSTATION6``) at dst_ip
    logon_port     a host record (4624, 5140, 5145) from client address and port X:P logged by
                   computer C, and the one connection from X:P on the wire, to address D: D is C
    first_label    ``WORKSTATION6`` and ``WORKSTATION6.theshire.local`` (the only such FQDN)
  weak (what a client claims of itself, which an attacker chooses):
    workstation    NTLMSSP's workstation name, or a 4624's WorkstationName, at src_ip
    machine_account  a network logon (4624) of the computer account ``WORKSTATION5$`` from src_ip
Strong evidence joins always. A forged workstation name must not merge the attacker with its
target: a workstation name never joins two machines that each already have an address, and a
computer account's logon (which needs that account's secret) names an address only while it has
no other name; a claim refused is kept as such in the evidence. Loopback and unspecified
addresses name no machine. A machine's one name is its fully qualified name when one is known
(the first label upper case, the domain lower case, as Windows writes
``WORKSTATION6.theshire.local``), else its NetBIOS name, else its address.

Users. ``DOMAIN\\user`` with the NetBIOS domain: a DNS domain is the NetBIOS one where a host
logged the same logon id under both (4624 ``THESHIRE.LOCAL``, 5145 ``THESHIRE``), else its first
label; ``user@domain`` is split; a user logged without a domain takes the one principal of that
name, if there is only one.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from smbwatch.events import SmbEvent

if TYPE_CHECKING:
    from smbwatch.case.store import Case

STRONG: Final = ("unc", "spn", "logon_port", "first_label")
_IGNORED_ADDRESSES: Final = frozenset({"0.0.0.0", "::", "-"})
# What a record says of machines, counted by distinct values (far fewer than records): the
# case counts them with SQL, a stream (``HostClaims``) as it goes; ``_claims`` reads them. The
# last is the computer account a host logged on (``NAME$``): no other user names a machine.
# The case counts each claim's own columns apart (a set of its own; the others are NULL there):
# 65,000 client addresses and 300 servers are not 65,000 × 300 rows.
_SAYINGS: Final = """
SELECT source, src_ip, dst_ip, server, spn, workstation, machine, count(*)
FROM (SELECT *, CASE WHEN source = 'host' AND action = 'logon' AND ends_with("user", '$')
        THEN "user" END AS machine FROM event_rows)
GROUP BY GROUPING SETS ((source, dst_ip, server), (dst_ip, spn), (src_ip, workstation),
    (src_ip, machine))
"""
Saying = tuple[str, str | None, str | None, str | None, str | None, str | None, str | None]


@dataclass
class _Evidence:
    kind: str
    address: str | None
    name: str
    count: int


@dataclass
class _Nodes:
    """Union-find over address and name nodes, with the evidence that joined them."""

    parent: dict[str, str] = field(default_factory=dict)
    addressed: set[str] = field(default_factory=set)  # roots whose machine has an address
    named: set[str] = field(default_factory=set)  # roots whose machine has a name
    used: list[_Evidence] = field(default_factory=list)
    refused: list[_Evidence] = field(default_factory=list)
    spelled: dict[str, str] = field(default_factory=dict)  # upper case name → as written

    def find(self, node: str) -> str:
        if node not in self.parent:
            self.parent[node] = node
            (self.addressed if node.startswith("a:") else self.named).add(node)
        while self.parent[node] != node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return node

    def union(self, a: str, b: str) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[root_a] = root_b
            for marked in (self.addressed, self.named):
                if root_a in marked:
                    marked.add(root_b)

    def may_join(self, kind: str, name_node: str, address_node: str) -> bool:
        """Whether a client's claim about itself may join its name and address: a name it
        chose (``workstation``) never merges two machines that each have an address; an
        account it logged on with (``machine_account``) may name an address that has no name
        yet (a second address of a known machine), never one that has another name."""
        if kind == "machine_account":
            return self.find(address_node) not in self.named
        return self.find(name_node) not in self.addressed


def is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _usable_address(text: str | None) -> str | None:
    if not text or text in _IGNORED_ADDRESSES:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if address.is_loopback or address.is_unspecified else str(address)


def canonical_name(name: str) -> str:
    """``WORKSTATION6.theshire.local``: the first label upper case, the domain lower case."""
    label, dot, domain = name.strip().strip(".").partition(".")
    return label.upper() + (dot + domain.lower() if dot else "")


def _clean_name(name: str | None) -> str | None:
    """A machine name worth a node: not empty, not an address, not a wildcard."""
    if not name:
        return None
    name = name.strip().strip("\\").strip(".")
    if not name or name in ("*", "-") or is_address(name) or len(name) > 255:
        return None
    return canonical_name(name)


def spn_host(spn: str) -> str | None:
    """The host of ``service/host[:port][/name][@REALM]``."""
    _, slash, rest = spn.partition("/")
    if not slash:
        return None
    host = rest.split("@")[0].split("/")[0].split(":")[0]
    return _clean_name(host)


def _claims(saying: Saying) -> Iterator[tuple[str, str | None, str]]:
    """The (kind, address, name) claims one kind of record makes: see the module's list."""
    source, src_ip, dst_ip, server, spn, workstation, machine = saying
    if server is not None:
        if source == "network" and dst_ip is not None:
            yield "unc", dst_ip, server
        elif source == "host":
            yield "computer", None, server
    if spn is not None and dst_ip is not None:
        yield "spn", dst_ip, spn
    if workstation is not None and src_ip is not None:
        yield "workstation", src_ip, workstation
    if machine is not None and src_ip is not None:
        yield "machine_account", src_ip, machine.rstrip("$")


# The connections from one client address and port: only where they all went to one server is
# that server the computer that logged a record from that address and port.
_LOGON_PORT: Final = """WITH wire AS (
        SELECT src_ip, src_port, min(dst_ip) AS dst_ip FROM event_rows
        WHERE source = 'network' AND src_port IS NOT NULL GROUP BY ALL
        HAVING count(DISTINCT dst_ip) = 1)
    SELECT w.dst_ip, h.server, count(*) FROM event_rows h
    JOIN wire w USING (src_ip, src_port)
    WHERE h.source = 'host' AND h.server IS NOT NULL GROUP BY ALL"""


def _evidence(sayings: Iterable[tuple[Saying, int]], ports: Iterable[Any] = ()) -> list[_Evidence]:
    """The usable evidence of what records say (and of logon ports, the case's)."""
    raw: Counter[tuple[str, str | None, str]] = Counter()
    for saying, count in sayings:
        for claim in _claims(saying):
            raw[claim] += count
    for address, server, count in ports:
        raw[("logon_port", address, server)] += count
    counted: Counter[tuple[str, str | None, str]] = Counter()
    for (kind, address, text), count in raw.items():  # each distinct claim cleaned once
        name = spn_host(text) if kind == "spn" else _clean_name(text)
        if name is not None:
            counted[(kind, _usable_address(address), name)] += count
    return [_Evidence(kind, address, name, n) for (kind, address, name), n in counted.items()]


def resolve_hosts(case: Case) -> None:
    """Rebuild ``hosts`` and ``host_keys`` from the evidence in the whole case."""
    sayings = [(tuple(row[:-1]), row[-1]) for row in case.rows(_SAYINGS)]
    evidence = _evidence(sayings, case.rows(_LOGON_PORT))  # type: ignore[arg-type]
    addresses = {a for saying, _ in sayings for a in saying[1:3] if a is not None}
    _store_hosts(case, _machines(_resolve(evidence, addresses)))


def _resolve(evidence: list[_Evidence], addresses: Iterable[str]) -> _Nodes:
    """Machines: every address seen has a node, named or not; evidence joins names and
    addresses (strong evidence always, a client's claim about itself as ``may_join`` says)."""
    nodes = _Nodes()
    for address in addresses:
        if usable := _usable_address(address):
            nodes.find(f"a:{usable}")
    names = {e.name for e in evidence}
    for e in evidence:
        nodes.find(f"n:{e.name.upper()}")
        if e.address:
            nodes.find(f"a:{e.address}")
    evidence.extend(_first_labels(names))
    for e in sorted(evidence, key=lambda e: (e.kind not in STRONG, -e.count, e.kind, e.name)):
        name_node = f"n:{e.name.upper()}"
        if e.kind == "first_label":
            nodes.union(name_node, f"n:{e.address}")  # the address field holds the other name
            nodes.used.append(e)
            continue
        if e.address is None:
            continue
        address_node = f"a:{e.address}"
        if nodes.find(name_node) == nodes.find(address_node):
            nodes.used.append(e)
        elif e.kind in STRONG or nodes.may_join(e.kind, name_node, address_node):
            nodes.union(name_node, address_node)
            nodes.used.append(e)
        else:
            nodes.refused.append(e)
    nodes.spelled = {e.name.upper(): e.name for e in evidence if e.kind != "first_label"}
    return nodes


def _first_labels(names: set[str]) -> list[_Evidence]:
    """``WORKSTATION6`` ↔ ``WORKSTATION6.theshire.local`` where that FQDN is the only one with
    that first label (the evidence's ``address`` holds the short name's node key)."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for name in names:
        if "." in name:
            by_label[name.split(".")[0].upper()].append(name)
    found = []
    for label, fqdns in by_label.items():
        if len(fqdns) == 1:
            found.append(_Evidence("first_label", label, fqdns[0], 1))
    return found


@dataclass
class Machines:
    """Machines as resolved: one row per machine for ``hosts`` (name, addresses, aliases,
    evidence as JSON), and every address, alias and short name that names one machine only."""

    hosts: list[tuple[str, list[str], list[str], str]]
    keys: dict[str, str]

    def namer(self, event: SmbEvent) -> tuple[str | None, str | None]:
        """An event's (src_host, dst_host), as the case's ``sightings`` view names them
        (``store._SRC_HOST``, ``store._DST_HOST``): host records' server is the logging
        computer, and their client may be named only by the workstation the log gives."""
        keys = self.keys
        src_ip, server = event.src_ip, event.server
        src = keys.get(src_ip) if src_ip is not None else None
        named = keys.get(server.upper()) if server is not None else None
        if event.source == "host":
            if src is None and event.workstation is not None:
                src = keys.get(event.workstation.upper()) or src_ip or event.workstation.upper()
            return src or src_ip, named or server
        dst_ip = event.dst_ip
        dst = keys.get(dst_ip) if dst_ip is not None else None
        return src or src_ip, dst or named or dst_ip


def _machines(nodes: _Nodes) -> Machines:
    clusters: dict[str, list[str]] = defaultdict(list)
    for node in list(nodes.parent):
        clusters[nodes.find(node)].append(node)
    used: dict[str, list[_Evidence]] = defaultdict(list)
    for e in nodes.used:
        used[nodes.find(f"n:{e.name.upper()}")].append(e)
    refused: dict[str, list[_Evidence]] = defaultdict(list)
    for e in nodes.refused:  # shown on both machines: the claimant and the one it named
        refused[nodes.find(f"a:{e.address}")].append(e)
        refused[nodes.find(f"n:{e.name.upper()}")].append(e)
    hosts: list[tuple[str, list[str], list[str], str]] = []
    keys: list[tuple[str, str]] = []
    for members in clusters.values():
        addresses = sorted(n[2:] for n in members if n.startswith("a:"))
        aliases = sorted(nodes.spelled.get(n[2:], n[2:]) for n in members if n.startswith("n:"))
        host = _host_name(aliases, addresses)
        root = nodes.find(members[0])
        proof = [_proof(e, "used") for e in used.get(root, ())]
        proof += [_proof(e, "refused") for e in refused.get(root, ())]
        hosts.append((host, addresses, aliases, json.dumps(proof)))
        keys.extend((a, host) for a in addresses)
        keys.extend((alias.upper(), host) for alias in aliases)
        keys.extend((a.split(".")[0].upper(), host) for a in aliases if "." in a)
    named: dict[str, set[str]] = defaultdict(set)
    for key, host in keys:
        named[key].add(host)
    # a short name two machines share names neither
    unique = {key: found.pop() for key, found in named.items() if len(found) == 1}
    return Machines(hosts, unique)


def _store_hosts(case: Case, machines: Machines) -> None:
    case.db.execute("DELETE FROM hosts")
    case.db.execute("DELETE FROM host_keys")
    case.insert("hosts", ("host", "addresses", "aliases", "evidence"), machines.hosts)
    case.insert("host_keys", ("key", "host"), list(machines.keys.items()))


class HostClaims:
    """What a stream of events says of machines, counted as it goes (one dictionary update
    an event): the names of a single input read without a case, worked out at the end."""

    def __init__(self) -> None:
        self._said: Counter[Saying] = Counter()

    def observe(self, events: Iterable[SmbEvent]) -> Iterator[SmbEvent]:
        """The events, passed on as they are counted."""
        said = self._said
        for event in events:
            user = event.user
            machine = (
                user
                if user is not None and event.source == "host" and event.action == "logon"
                else None
            )
            said[
                (
                    event.source,
                    event.src_ip,
                    event.dst_ip,
                    event.server,
                    event.spn,
                    event.workstation,
                    machine if machine is not None and machine.endswith("$") else None,
                )
            ] += 1
            yield event

    def machines(self) -> Machines:
        said = self._said
        addresses = {a for saying in said for a in saying[1:3] if a is not None}
        return _machines(_resolve(_evidence(said.items()), addresses))


def _host_name(aliases: list[str], addresses: list[str]) -> str:
    fqdns = [a for a in aliases if "." in a]
    if fqdns:
        return min(fqdns, key=lambda a: (-len(a.split(".")), a))
    if aliases:
        return aliases[0]
    return addresses[0]


def _proof(e: _Evidence, verdict: str) -> dict[str, Any]:
    return {"kind": e.kind, "address": e.address, "name": e.name, "events": e.count, verdict: True}


# --- users ------------------------------------------------------------------------------------
def split_user(domain: str | None, user: str) -> tuple[str | None, str]:
    """(domain, user) from the forms logs use: ``user@dns.domain``, ``DOMAIN\\user``."""
    if "\\" in user:
        prefix, _, user = user.rpartition("\\")
        domain = domain or prefix
    elif "@" in user:
        user, _, suffix = user.partition("@")
        domain = domain or suffix
    return (domain.strip().upper() or None) if domain else None, user.strip()


def resolve_users(case: Case) -> None:
    """Rebuild ``users`` and ``user_keys`` from the whole case."""
    seen = case.rows(
        'SELECT domain, "user", count(*) FROM event_rows WHERE "user" IS NOT NULL GROUP BY ALL'
    )
    same_logon = case.rows(
        """SELECT DISTINCT upper(a.domain), upper(b.domain) FROM event_rows a
        JOIN event_rows b ON a.logon_id = b.logon_id AND upper(a.server) = upper(b.server)
            AND upper(a."user") = upper(b."user")
        WHERE a.source = 'host' AND b.source = 'host' AND a.domain IS NOT NULL
            AND b.domain IS NOT NULL AND upper(a.domain) < upper(b.domain)"""
    )
    netbios, how = _netbios_domains([d for d, _, _ in seen], same_logon)
    spellings: dict[tuple[str | None, str], Counter[str]] = defaultdict(Counter)
    raw: dict[tuple[str | None, str], list[tuple[str | None, str, int]]] = defaultdict(list)
    for domain, user, count in seen:
        parsed_domain, parsed_user = split_user(domain, user)
        if not parsed_user:
            continue
        key = (netbios.get(parsed_domain, parsed_domain), parsed_user.upper())
        spellings[key][parsed_user] += count
        raw[key].append((domain, user, count))
    names = {key: _principal(key[0], spellings[key]) for key in spellings}
    by_user: dict[str, set[str]] = defaultdict(set)
    for (domain, user), principal in names.items():
        if domain is not None:
            by_user[user].add(principal)
    rows, keys = [], {}
    for key, principal in names.items():
        if key[0] is None and len(by_user[key[1]]) == 1:
            principal = next(iter(by_user[key[1]]))  # the one principal of that name
        for domain, user, _ in raw[key]:
            keys[f"{(domain or '').upper()}\\{user.upper()}"] = principal
        rows.append((principal, raw[key]))
    _store_users(case, rows, keys, netbios, how)


def _netbios_domains(
    domains: list[str | None], same_logon: list[tuple[str, str]]
) -> tuple[dict[str | None, str], dict[str, str]]:
    """DNS domain (upper case) → NetBIOS domain, and how each was found."""
    mapping: dict[str | None, str] = {}
    how: dict[str, str] = {}
    for a, b in same_logon:  # the same logon logged under both names
        dns, short = (a, b) if "." in a else (b, a)
        if "." in dns and "." not in short:
            mapping[dns], how[dns] = short, "same_logon_id"
    for domain in domains:
        parsed, _ = split_user(domain, "x")
        if parsed and "." in parsed and parsed not in mapping:
            mapping[parsed], how[parsed] = parsed.split(".")[0], "first_label"
    return mapping, how


def _principal(domain: str | None, spellings: Counter[str]) -> str:
    user = max(spellings.items(), key=lambda item: (item[1], item[0]))[0]
    return f"{domain}\\{user}" if domain else user


def _store_users(
    case: Case,
    rows: list[tuple[str, list[tuple[str | None, str, int]]]],
    keys: dict[str, str],
    netbios: dict[str | None, str],
    how: dict[str, str],
) -> None:
    merged: dict[str, list[tuple[str | None, str, int]]] = defaultdict(list)
    for principal, seen in rows:
        merged[principal].extend(seen)
    case.db.execute("DELETE FROM users")
    case.db.execute("DELETE FROM user_keys")
    users = []
    for principal, seen in merged.items():
        aliases = sorted({f"{d}\\{u}" if d else u for d, u, _ in seen})
        evidence: list[dict[str, Any]] = [{"domain": d, "user": u, "events": n} for d, u, n in seen]
        for dns in sorted({split_user(d, u)[0] or "" for d, u, _ in seen} & how.keys()):
            evidence.append({"domain": dns, "netbios": netbios[dns], "by": how[dns]})
        users.append((principal, aliases, json.dumps(evidence)))
    case.insert("users", ("principal", "aliases", "evidence"), users)
    case.insert("user_keys", ("key", "principal"), list(keys.items()))
