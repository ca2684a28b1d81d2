"""Running rules over events: dispatch, evaluation, aggregation and correlation into alerts.

Events are dispatched on ``(source, action)``: for each kind of event seen, the rules that can
match it (from what their ``EventID``/``action`` items admit) are generated into one Python
function, which reads each field once and returns the indexes of the rules that matched. A kind
no rule cares about costs one dictionary lookup.

Matches are aggregated as they arrive (first/last time, actions, evidence per group-by values);
correlation rules (Sigma ``event_count``, ``value_count``, ``temporal``, ``temporal_ordered``)
are evaluated at the end over the matches of the rules they refer to, in time order. So are the
matches of rules with exclusions (``smbwatch.exclude``), which need what the whole input says
of the domain's controllers.

An alert's ``count`` is the number of actions behind it, not of events: an open with its writes
and its close is one action, a 4697 and a 7045 of one service installation are one. Alerts of
one rule family (``smbwatch.family``) on the same object of the same host at the same moment are
merged into one, with the evidence of all. So are alerts of one rule or one family whose events
the case's correlation linked across the wire and the host logs (one action seen by both sides
is one alert), and an alert says which sources saw its action (``confirmed_by``).
"""

from __future__ import annotations

import json
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from smbwatch.detect import fields
from smbwatch.detect.alert import (
    CONTEXT_FIELDS,
    Alert,
    decode_powershell,
    event_context,
    shorten,
)
from smbwatch.detect.compiler import Key, admits
from smbwatch.detect.domain import OBSERVED, DomainControllers, is_local
from smbwatch.detect.incidents import Incident, group_incidents
from smbwatch.detect.sigma import DEFAULT_GROUP_BY, TEMPLATE_FIELD, Rule, RuleSet
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent, format_time

Matcher = Callable[[SmbEvent], list[int]]
# The events fed at these places (ascending positions in the stream), fed again: what a detector
# over a case's timeline reads a second time instead of holding (``arrow.events_at``).
Recall = Callable[[list[int]], Iterable[SmbEvent]]
# An event's client and server machine names where the events do not carry them (a single
# input read without the case: the names are worked out once the whole input is read).
Namer = Callable[[SmbEvent], tuple[str | None, str | None]]
ActionKey = int  # action_key()
CONTEXT_SET = frozenset(CONTEXT_FIELDS)
UNKNOWN = "(unknown)"  # a template field no event of the alert has
UNKNOWN_USER = "(unknown user)"  # a Kerberos session names no user on the wire
ENCRYPTED = "(encrypted)"  # ... because DCE/RPC packet privacy sealed the arguments
ENCRYPTED_NOTE = " [arguments encrypted: DCE/RPC packet privacy]"
FAMILY_WINDOW = 120 * 1_000_000  # alerts of one family this close in time are one action's
NETWORK, HOST = 1, 2  # bits of _Group.sources
_CONFIRMED = {
    sources: tuple(name for bit, name in ((NETWORK, "network"), (HOST, "host")) if sources & bit)
    for sources in range(4)
}
_SAMPLES = 16  # events kept per alert to fill its message; evidence keeps a reference to all
# The matches of a rule a correlation refers to that are held as events; with a way to read the
# events again (``Recall``), the rest are held as their places in the stream. A case of 461,468
# network logons held 800 MB of them for correlations that, wanting a service installed as
# well, read none.
HELD_MATCHES = 32_768
# Event fields that come from a call's decoded arguments: sealed calls leave them empty.
_ARGUMENT_ATTRIBUTES = (
    "e.rpc_args",
    "_rpc_arg(",
    "e.service_name",
    "e.image_path",
    "e.start_type",
    "e.service_type",
    "e.account",
    "e.task_",
)


def _nothing(_event: SmbEvent) -> list[int]:
    return []


def action_key(event: SmbEvent) -> ActionKey:
    """What identifies the action an event is part of: the open for a file or pipe event (its
    writes, reads and close), the installation for a service install record, else the event.

    Kept as the hash of those values: an alert of a hunting rule may gather a million events,
    and ints are neither stored as tuples nor walked by the garbage collector.
    """
    if event.source == "host":
        if event.action == "service_install":
            return hash(("service", event.server, event.service_name, event.image_path))
        return hash(("record", event.source_file, event.source_ref, event.time))
    if event.file_id is not None and event.action != "rpc_call":  # a FileId is per tree
        key = (event.source_file, event.src_ip, event.src_port, event.tree_id, event.file_id)
        return hash(key)
    return hash(("message", event.source_file, event.source_ref, event.time, event.rpc_opnum))


@dataclass(slots=True)
class _Group:
    """The events of one alert: one rule, one tuple of group-by values.

    Its who/where/what (``context``) is read from the sample events when the alert is made,
    earliest first: per event only what every alert needs is kept (its evidence and action).
    """

    values: tuple[Any, ...]
    first: int
    last: int
    evidence: list[tuple[int, str | None, int | None]] = field(default_factory=list)
    samples: list[SmbEvent] = field(default_factory=list)
    actions: dict[ActionKey, None] = field(default_factory=dict)  # in order, for determinism
    encrypted: bool = False  # a call of the alert had its arguments sealed
    attack: tuple[str, ...] = ()  # techniques of the alerts of its family merged into it
    sources: int = 0  # NETWORK | HOST: the sides that saw its events, or records linked to them
    linked: list[tuple[str | None, int | None]] = field(default_factory=list)  # other side's
    _context: dict[str, Any] | None = None

    def add(self, event: SmbEvent, action: ActionKey) -> None:
        time = event.time
        if time < self.first:
            self.first = time
        elif time > self.last:
            self.last = time
        self.evidence.append((time, event.source_file, event.source_ref))
        if len(self.samples) < _SAMPLES:
            self.samples.append(event)
            self._context = None
        self.actions[action] = None
        if event.encrypted and event.action == "rpc_call":
            self.encrypted = True
        self.sources |= NETWORK if event.source == "network" else HOST
        if event.links is not None:
            self.sources |= HOST if event.source == "network" else NETWORK
            self.linked.extend(
                (link.get("source_file"), link.get("source_ref")) for link in event.links
            )

    def merge(self, other: _Group) -> None:
        """Take in the events of another alert of the same action (one rule family)."""
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        known = set(self.evidence)
        self.evidence.extend(item for item in other.evidence if item not in known)
        self.samples.extend(other.samples[: max(0, _SAMPLES - len(self.samples))])
        self.actions.update(other.actions)
        self.encrypted = self.encrypted or other.encrypted
        self.sources |= other.sources
        self.linked.extend(other.linked)
        self._context = None

    def context(self, namer: Namer | None = None) -> dict[str, Any]:
        """The earliest value of each context field among the sample events (machine names
        from ``namer`` where the events carry none)."""
        if self._context is None and namer is None and len(self.samples) == 1:
            self._context = event_context(self.samples[0])  # most alerts: one event
        elif self._context is None:
            samples = sorted(self.samples, key=lambda e: e.time)
            self._context = {}
            for event in samples:
                for name, value in event_context(event).items():
                    self._context.setdefault(name, value)
            if namer is not None:
                for event in samples:
                    src_host, dst_host = namer(event)
                    if src_host is not None:
                        self._context.setdefault("src_host", src_host)
                    if dst_host is not None:
                        self._context.setdefault("dst_host", dst_host)
        return self._context

    def value(self, name: str, namer: Namer | None = None) -> Any:
        return self.context(namer).get(name)


class Detector:
    """Feed it events, then ask for alerts. Rules are compiled once, when the rule set loads.

    ``recall``: the events fed can be read again (a case's timeline). A correlation's rules
    are then held as events up to ``HELD_MATCHES`` matches each, and as places past that: most
    correlations end before they read the commonest of their rules (nothing else matched), and
    the others read those matches again from the case, once each, made only of those rows."""

    def __init__(
        self,
        ruleset: RuleSet,
        diagnostics: Diagnostics | None = None,
        namer: Callable[[], Namer | None] | None = None,
        recall: Recall | None = None,
    ) -> None:
        self._ruleset = ruleset
        self._namer_of = namer  # called once the events are in: the names they lead to
        self._namer: Namer | None = None
        self._rules = ruleset.rules
        self._diagnostics = diagnostics if diagnostics is not None else Diagnostics()
        self._matchers: dict[Key, Matcher] = ruleset.matchers
        self._index = {id(rule.sigma): i for i, rule in enumerate(self._rules)}
        self._getters = [_group_getters(rule) for rule in self._rules]
        self._templates = [_Template(rule) for rule in self._rules]
        self._names = [_group_names(rule) for rule in self._rules]
        # The group-by fields of each rule that are context fields too (an alert's user, path).
        self._context_by = [
            [name for name in _group_names(rule) if name in CONTEXT_SET] for rule in self._rules
        ]
        self._groups: list[dict[tuple[Any, ...], _Group]] = [{} for _ in self._rules]
        self._correlated = {
            self._index[id(ref.rule)]
            for rule in self._rules
            if isinstance(rule.sigma, SigmaCorrelationRule)
            for ref in rule.sigma.rules or ()
            if id(ref.rule) in self._index
        }
        self._matches: dict[int, list[SmbEvent]] = defaultdict(list)
        self._recall = recall
        self._fed = 0  # events fed: the next one's place
        self._places: dict[int, array[int]] = {}  # matches past HELD_MATCHES, where they are
        self._held: dict[int, list[SmbEvent]] = defaultdict(list)  # rules with exclusions
        self._domain = DomainControllers()
        self._opens: set[ActionKey] = set()  # opens some rule matched: their close has the hash
        self._hashes: dict[ActionKey, str] = {}

    def feed(self, event: SmbEvent) -> None:
        """Evaluate every rule that can match this event and record the matches."""
        self._fed += 1
        key = (event.source, event.action)
        if key in OBSERVED:
            self._domain.observe(event)
        elif event.sha256 is not None and event.action == "close" and self._opens:
            opened = action_key(event)
            if opened in self._opens:
                self._hashes[opened] = event.sha256
        matcher = self._matchers.get(key)
        if matcher is None:
            matcher = self._matchers[key] = self._build_matcher(key)
        try:
            hits = matcher(event)
        except Exception as error:  # a producer broke the contract's types; keep going
            self._diagnostics.warn("detect_bad_event", f"{event.source_file}: {error!r}")
            return
        if hits:
            action = action_key(event)  # once, whatever the number of rules that matched
            for index in hits:
                self._record(index, event, action)

    def feed_all(self, events: Iterable[SmbEvent]) -> None:
        for event in events:
            self.feed(event)

    def alerts(self) -> list[Alert]:
        """All alerts so far, highest risk first, then earliest."""
        self._namer = self._namer_of() if self._namer_of is not None else None
        found: list[tuple[int, _Group]] = []
        for index, rule in enumerate(self._rules):
            if isinstance(rule.sigma, SigmaCorrelationRule):
                groups = self._correlate(rule)
            elif rule.generate:
                groups = list(self._groups[index].values()) + self._held_groups(index, rule)
            else:
                continue
            found.extend((index, group) for group in groups)
        merged = _merge_linked(self._rules, _merge(self._rules, found, self._namer))
        out = [self._alert(index, group) for index, group in merged]
        out.sort(key=lambda a: (-a.risk_score, a.first_time or "", a.title))
        return out

    def alerts_so_far(self) -> int:
        """How many alerts the matches so far make, before correlation and the merging of a
        family's alerts (what a progress display shows while the events come)."""
        return sum(map(len, self._groups))

    def generated_source(self, key: Key) -> str:
        """The Python source evaluated for events of kind ``key`` (to inspect or debug rules)."""
        return self._matcher_source(key)[0]

    # --- evaluation --------------------------------------------------------------------------
    def _build_matcher(self, key: Key) -> Matcher:
        source, used = self._matcher_source(key)
        if not used:
            return _nothing
        namespace = self._ruleset.compiler.constants
        exec(compile(source, f"<smbwatch rules for {key}>", "exec"), namespace)  # noqa: S102
        return namespace.pop("_matcher")

    def _matcher_source(self, key: Key) -> tuple[str, bool]:
        chosen = [
            (i, rule.compiled.terms)
            for i, rule in enumerate(self._rules)
            if rule.compiled is not None and admits(rule.compiled.keys, key)
        ]
        return self._ruleset.compiler.matcher_source(chosen), bool(chosen)

    def _record(self, index: int, event: SmbEvent, action: ActionKey) -> None:
        rule = self._rules[index]
        if index in self._correlated:
            held = self._matches[index]
            if self._recall is None or len(held) < HELD_MATCHES:
                held.append(event)
            else:
                places = self._places.get(index)
                if places is None:
                    places = self._places[index] = array("q")
                places.append(self._fed - 1)
        if not rule.generate:
            return
        if event.source == "network" and event.file_id is not None and event.action != "close":
            self._opens.add(action)
        if rule.exclude:
            self._held[index].append(event)
        else:
            self._group(index, rule, event, self._groups[index], action)

    def _group(
        self,
        index: int,
        rule: Rule,
        event: SmbEvent,
        groups: dict[tuple[Any, ...], _Group],
        action: ActionKey,
    ) -> None:
        """Add one matched event to the alert of its group-by values."""
        values = tuple([get(event) for get in self._getters[index]])
        if rule.require_group_fields and None in values:
            return
        key = tuple([_hashable(v) if type(v) in _UNHASHABLE else v for v in values])
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(values, event.time, event.time)
        group.add(event, action)

    def _held_groups(self, index: int, rule: Rule) -> list[_Group]:
        """The alerts of a rule with exclusions, from its matches that are not excluded."""
        groups: dict[tuple[Any, ...], _Group] = {}
        for event in self._held.get(index, ()):
            if not self._excluded(rule, event):
                self._group(index, rule, event, groups, action_key(event))
        return list(groups.values())

    def _excluded(self, rule: Rule, event: SmbEvent) -> bool:
        """Whether the rule's exclusions drop this event (see ``smbwatch.exclude``)."""
        for exclusion in rule.exclude:
            if exclusion == "localhost" and is_local(event.src_ip, event.dst_ip):
                return True
            if exclusion == "domain_controllers" and self._domain.is_controller(
                event.src_ip, event.user
            ):
                return True
        return False

    # --- correlation -------------------------------------------------------------------------
    def _correlate(self, rule: Rule) -> list[_Group]:
        sigma = rule.sigma
        assert isinstance(sigma, SigmaCorrelationRule)
        if rule.warnings:  # a construct smbwatch cannot evaluate: the rule never fires
            return []
        refs = list(sigma.rules or ())
        timeline: dict[tuple[Any, ...], list[tuple[int, int, SmbEvent]]] = defaultdict(list)
        # Temporal rules need an event of every rule referenced in a window: a group-by value
        # that one of them lacks makes none. The rules are read fewest matches first, and of
        # the others only the values found so far are kept (a correlation whose first step
        # is every network logon read 461,468 of them three times over for nothing).
        every = sigma.type in _EVERY_RULE
        indexes = [self._index[id(ref.rule)] for ref in refs]
        order = list(range(len(refs)))
        if every:
            order.sort(key=lambda position: self._count(indexes[position]))
        wanted: set[tuple[Any, ...]] | None = None
        first: dict[tuple[Any, ...], None] = {}  # the values in the order the first rule met them
        for position in order:
            index = indexes[position]
            referenced = self._rules[index]
            getters = _correlation_getters(sigma, refs[position].reference, referenced.zeek)
            found: set[tuple[Any, ...]] = set()
            for event in self._matched(index):
                values = tuple([get(event) for get in getters])
                if None in values:
                    continue  # Sigma: events without the group-by fields do not correlate
                if wanted is not None and values not in wanted:
                    continue
                if self._excluded(rule, event) or self._excluded(referenced, event):
                    continue
                timeline[values].append((event.time, position, event))
                found.add(values)
                if position == 0:
                    first[values] = None
            if every:
                wanted = found if wanted is None else wanted & found
                if not wanted:
                    return []
        span = sigma.timespan.seconds * 1_000_000
        groups = []
        for values in first if every else timeline:
            if wanted is not None and values not in wanted:
                continue
            entries = timeline[values]
            entries.sort(key=lambda entry: (entry[0], entry[1]))
            for chosen in _windows(sigma, entries, span, len(refs)):
                group = _Group(values, chosen[0][0], chosen[0][0])
                for *_, event in chosen:
                    group.add(event, action_key(event))
                groups.append(group)
        return groups

    def _count(self, index: int) -> int:
        """How many events rule ``index`` matched (for a correlation that refers to it)."""
        return len(self._matches.get(index, ())) + len(self._places.get(index, ()))

    def _matched(self, index: int) -> Iterable[SmbEvent]:
        """The events rule ``index`` matched, in the order fed: those held, then those read
        again from their places."""
        held = self._matches.get(index, [])
        places = self._places.get(index)
        if not places:  # none without a way to read them again (``_record``)
            return held
        return chain(held, self._recalled(places.tolist()))

    def _recalled(self, places: list[int]) -> Iterator[SmbEvent]:
        """The events at ``places``, read again; a stream that no longer reaches them all (it
        cannot change while its case is open) is said, not hidden."""
        assert self._recall is not None
        found = 0
        for event in self._recall(places):
            found += 1
            yield event
        if found < len(places):
            self._diagnostics.warn(
                "detect_matches_lost",
                f"{len(places) - found} matched events could not be read again for correlation",
            )

    def _alert(self, index: int, group: _Group) -> Alert:
        rule = self._rules[index]
        by = dict(zip(self._names[index], group.values, strict=True))
        evidence = group.evidence
        if len(evidence) > 1:
            evidence = sorted(evidence, key=_first)
        events = group.samples
        if len(events) > 1:
            events = sorted(events, key=_time)
        context = group.context(self._namer)  # the group's last use: taken as it is
        context.pop("server", None)  # a group-by field where a rule names it, not a context one
        for name in self._context_by[index]:
            if by[name] is not None:
                context[name] = by[name]
        if "sha256" not in context and self._hashes:  # a write: the hash is on its close
            sha256 = next((self._hashes[k] for k in group.actions if k in self._hashes), None)
            if sha256 is not None:
                context["sha256"] = sha256
        if "command" in context:
            context["command_decoded"] = decode_powershell(context["command"])
        return Alert(
            rule_id=rule.rule_id,
            title=rule.title,
            severity=rule.level,
            risk_score=rule.risk_score,
            message=self._templates[index].fill(by, events, group.encrypted),
            attack=list(dict.fromkeys((*rule.attack, *group.attack)))
            if group.attack
            else list(rule.attack),
            first_time=format_time(group.first),
            last_time=format_time(group.last),
            count=len(group.actions),
            confirmed_by=list(_CONFIRMED[group.sources]),
            group=by,
            evidence=[{"source_file": f, "source_ref": ref} for _, f, ref in evidence],
            **context,
        )


def _windows(
    sigma: SigmaCorrelationRule, entries: list[tuple[int, int, SmbEvent]], span: int, n: int
) -> Iterable[list[tuple[int, int, SmbEvent]]]:
    """The event windows (within ``span``) that satisfy a correlation, without overlap."""
    if sigma.type == SigmaCorrelationType.TEMPORAL_ORDERED:
        yield from _ordered(entries, span, n)
        return
    condition = sigma.condition
    assert isinstance(condition, SigmaCorrelationCondition)
    # A burst that met an at-least threshold stays one alert while its events keep coming
    # within the timespan of each other (444 Zerologon attempts: one alert, not 89).
    growing = sigma.type != SigmaCorrelationType.TEMPORAL and condition.op in (
        SigmaCorrelationConditionOperator.GT,
        SigmaCorrelationConditionOperator.GTE,
    )
    start = end = 0
    while end < len(entries):
        while entries[end][0] - entries[start][0] > span:
            start += 1
        window = entries[start : end + 1]
        if sigma.type == SigmaCorrelationType.TEMPORAL:
            met = len({position for _, position, _ in window}) == n
        elif sigma.type == SigmaCorrelationType.VALUE_COUNT:
            get = fields.getter(str(condition.fieldref))
            distinct = Counter(_hashable(get(e)) for *_, e in window if get and get(e) is not None)
            met = _compare(condition, len(distinct))
        else:
            met = _compare(condition, len(window))
        if met:
            while (
                growing and end + 1 < len(entries) and entries[end + 1][0] <= entries[end][0] + span
            ):
                end += 1
            yield entries[start : end + 1]
            start = end + 1
        end += 1


def _within(entries: list[tuple[int, int, SmbEvent]], end: int, span: int) -> bool:
    """Whether the entry after ``end`` follows it within ``span``."""
    return entries[end + 1][0] - entries[end][0] <= span


def _ordered(
    entries: list[tuple[int, int, SmbEvent]], span: int, n: int
) -> Iterable[list[tuple[int, int, SmbEvent]]]:
    """Sequences of the referenced rules in order (rule 1, then 2, ...) within ``span``.

    ``chains[k]`` is the partial sequence through rule k+1 that started latest, so a sequence
    shows the last logon before a service installation, not the first of the day.
    """
    chains: list[list[tuple[int, int, SmbEvent]] | None] = [None] * n
    for entry in entries:
        time, position, _ = entry
        if position == 0:
            chains[0] = [entry]
        else:
            before = chains[position - 1]
            if before is None or time - before[0][0] > span:
                continue
            chains[position] = [*before, entry]
        if (chain := chains[n - 1]) is not None:
            yield chain
            chains = [None] * n


def _compare(condition: SigmaCorrelationCondition, count: int) -> bool:
    op, limit = condition.op, condition.count
    return {
        SigmaCorrelationConditionOperator.LT: count < limit,
        SigmaCorrelationConditionOperator.LTE: count <= limit,
        SigmaCorrelationConditionOperator.GT: count > limit,
        SigmaCorrelationConditionOperator.GTE: count >= limit,
        SigmaCorrelationConditionOperator.EQ: count == limit,
        SigmaCorrelationConditionOperator.NEQ: count != limit,
    }[op]


# --- alerts ----------------------------------------------------------------------------------
def _merge(
    rules: list[Rule], found: list[tuple[int, _Group]], namer: Namer | None = None
) -> list[tuple[int, _Group]]:
    """Alerts of one family on one object of one host, close in time, made one (unless two
    clients are named): the rule of highest risk names it, the others' events and techniques
    join it (``_Group.attack``)."""
    kept: dict[tuple[str, str, str], list[_Group]] = defaultdict(list)
    absorbed: set[int] = set()
    families = [pair for pair in found if rules[pair[0]].family is not None]
    families.sort(key=lambda pair: (-rules[pair[0]].risk_score, pair[1].first))
    for index, group in families:
        rule = rules[index]
        key = _family_key(rule, group, namer)
        if key is None:
            continue
        client = group.value("src_ip", namer)
        same = next(
            (
                g
                for g in kept[key]
                if abs(g.first - group.first) <= FAMILY_WINDOW
                and client in (None, g.value("src_ip", namer) or client)
            ),
            None,
        )
        if same is None:
            kept[key].append(group)
            continue
        same.merge(group)
        same.attack = (*same.attack, *rule.attack)
        absorbed.add(id(group))
    return [pair for pair in found if id(pair[1]) not in absorbed] if absorbed else found


def _family_key(
    rule: Rule, group: _Group, namer: Namer | None = None
) -> tuple[str, str, str] | None:
    """(family, host, object) of an alert, or None when it has no family or no object."""
    if rule.family is None:
        return None
    context = group.context(namer)
    host = next(
        (context[name] for name in ("dst_host", "server", "dst_ip") if context.get(name)), None
    )
    what = next(
        (context[name] for name in ("service_name", "task_name", "path") if context.get(name)),
        None,
    )
    if host is None or what is None:
        return None
    return rule.family, str(host).split(".", 1)[0].lower(), str(what).lower()


def _merge_linked(rules: list[Rule], found: list[tuple[int, _Group]]) -> list[tuple[int, _Group]]:
    """Alerts of one rule or one rule family whose events the case linked across the wire and
    the host logs, made one: the rule of highest risk names it (then the earliest alert)."""
    linked = [pair for pair in found if pair[1].linked]
    if not linked:
        return found
    owner: dict[tuple[str | None, int | None], int] = {}
    for position, (_, group) in enumerate(linked):
        for _, source_file, source_ref in group.evidence:
            owner.setdefault((source_file, source_ref), position)
    parent = list(range(len(linked)))

    def root(position: int) -> int:
        while parent[position] != position:
            parent[position] = parent[parent[position]]
            position = parent[position]
        return position

    for position, (index, group) in enumerate(linked):
        for other in {owner[ref] for ref in group.linked if ref in owner}:
            if other != position and _one_action(rules[index], rules[linked[other][0]]):
                parent[root(other)] = root(position)
    sets: dict[int, list[tuple[int, _Group]]] = defaultdict(list)
    for position, pair in enumerate(linked):
        sets[root(position)].append(pair)
    absorbed: set[int] = set()
    for members in sets.values():
        if len(members) == 1:
            continue
        members.sort(key=lambda pair: (-rules[pair[0]].risk_score, pair[1].first))
        _, kept = members[0]
        for index, group in members[1:]:
            kept.merge(group)
            kept.attack = (*kept.attack, *rules[index].attack, *group.attack)
            absorbed.add(id(group))
    return [pair for pair in found if id(pair[1]) not in absorbed] if absorbed else found


def _one_action(a: Rule, b: Rule) -> bool:
    """Whether alerts of these two rules on linked events are alerts of one action."""
    return a.rule_id == b.rule_id or (a.family is not None and a.family == b.family)


class _Template:
    """A rule's message: its template cut once into text and ``$field$`` parts, each filled
    from the alert's group-by values, else from its earliest event that has the field (values
    shortened); without a template, the title and the group values. What packet privacy hid is
    said."""

    def __init__(self, rule: Rule) -> None:
        self._rule = rule
        self._parts: list[tuple[str, str | None]] = []  # (text before, field name)
        if rule.message is not None:
            parts = TEMPLATE_FIELD.split(rule.message)
            names: list[str | None] = [*parts[1::2], None]
            self._parts = list(zip(parts[0::2], names, strict=True))

    def fill(self, by: dict[str, Any], events: list[SmbEvent], encrypted: bool) -> str:
        rule = self._rule
        if rule.message is None:
            shown = ", ".join(f"{k}={shorten(v)}" for k, v in by.items() if v is not None)
            text = f"{rule.title}: {shown}" if shown else rule.title
        else:
            pieces = []
            for before, name in self._parts:
                pieces.append(before)
                if name is not None:
                    pieces.append(_template_value(name, by, events, rule.zeek, encrypted))
            text = "".join(pieces)
        return text + ENCRYPTED_NOTE if encrypted else text


def _template_value(
    name: str, by: dict[str, Any], events: list[SmbEvent], zeek: bool, encrypted: bool
) -> str:
    value = by.get(name)
    if value is None:
        get = fields.getter(name, zeek)
        if get is None:
            return f"${name}$"
        value = next((v for e in events if (v := get(e)) is not None), None)
    if value is None:
        return _placeholder(name, zeek, encrypted)
    return shorten(value)


def _placeholder(name: str, zeek: bool, encrypted: bool) -> str:
    """What a message shows for a field none of its events has, and why where it is known."""
    spec = fields.lookup(name, zeek)
    exprs = spec.exprs if spec is not None else ()
    if encrypted and any(attr in expr for expr in exprs for attr in _ARGUMENT_ATTRIBUTES):
        return ENCRYPTED
    return UNKNOWN_USER if any("e.user" in expr for expr in exprs) else UNKNOWN


def _group_names(rule: Rule) -> tuple[str, ...]:
    """The fields an alert of this rule is grouped by (correlations: their Sigma group-by)."""
    if rule.group_by or isinstance(rule.sigma, SigmaCorrelationRule):
        return rule.group_by
    return DEFAULT_GROUP_BY


def _group_getters(rule: Rule) -> list[Callable[[SmbEvent], Any]]:
    zeek = rule.zeek and bool(rule.group_by)  # the default names are the contract's
    return [_getter(name, zeek) for name in _group_names(rule)]


def _correlation_getters(
    sigma: SigmaCorrelationRule, reference: str, zeek: bool
) -> list[Callable[[SmbEvent], Any]]:
    """Group-by getters for the events of one referenced rule, honouring field aliases."""
    names = []
    for name in sigma.group_by or ():
        alias = sigma.aliases.aliases.get(name)
        mapped = {ref.reference: target for ref, target in alias.mapping.items()} if alias else {}
        names.append(mapped.get(reference, name))
    return [_getter(name, zeek) for name in names]


def _getter(name: str, zeek: bool) -> Callable[[SmbEvent], Any]:
    get = fields.getter(name, zeek)
    return get if get is not None else _none


def _none(_event: SmbEvent) -> None:
    return None


_UNHASHABLE = (dict, list)
# Correlations whose every window holds an event of each rule they reference.
_EVERY_RULE = (SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED)


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


def _time(event: SmbEvent) -> int:
    return event.time


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def detect(
    events: Iterable[SmbEvent],
    ruleset: RuleSet,
    diagnostics: Diagnostics | None = None,
    namer: Callable[[], Namer | None] | None = None,
) -> list[Alert]:
    """Run ``ruleset`` over ``events`` and return the alerts (highest risk first), each in its
    incident (``incident_id``). ``namer``: see ``Detector``."""
    return detect_incidents(events, ruleset, diagnostics, namer)[0]


def detect_incidents(
    events: Iterable[SmbEvent],
    ruleset: RuleSet,
    diagnostics: Diagnostics | None = None,
    namer: Callable[[], Namer | None] | None = None,
    recall: Recall | None = None,
) -> tuple[list[Alert], list[Incident]]:
    """The alerts (as ``detect``) and the incidents they make up (highest risk first);
    ``recall``: the events can be read again (``Detector``)."""
    detector = Detector(ruleset, diagnostics, namer, recall)
    detector.feed_all(events)
    alerts = detector.alerts()
    return alerts, group_incidents(alerts)
