"""Running rules over events: dispatch, evaluation, aggregation and correlation into alerts.

Events are dispatched on ``(source, action)``: for each kind of event seen, the rules that can
match it (from what their ``EventID``/``action`` items admit) are generated into one Python
function, which reads each field once and returns the indexes of the rules that matched. A kind
no rule cares about costs one dictionary lookup.

Matches are aggregated as they arrive (first/last time, count, evidence per group-by values);
correlation rules (Sigma ``event_count``, ``value_count``, ``temporal``, ``temporal_ordered``)
are evaluated at the end over the matches of the rules they refer to, in time order.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationConditionOperator,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)

from smbwatch.detect import fields
from smbwatch.detect.compiler import Key, admits
from smbwatch.detect.sigma import DEFAULT_GROUP_BY, TEMPLATE_FIELD, Rule, RuleSet
from smbwatch.diagnostics import Diagnostics
from smbwatch.events import SmbEvent, format_time

Matcher = Callable[[SmbEvent], list[int]]
_MISSING = "-"  # a template field no event of the alert has
_SAMPLES = 16  # events kept per alert to fill its message; evidence keeps a reference to all


def _nothing(_event: SmbEvent) -> list[int]:
    return []


@dataclass
class _Group:
    """The events of one alert: one rule, one tuple of group-by values."""

    values: tuple[Any, ...]
    first: int
    last: int
    evidence: list[tuple[int, str | None, int | None]] = field(default_factory=list)
    samples: list[SmbEvent] = field(default_factory=list)

    def add(self, event: SmbEvent) -> None:
        self.first = min(self.first, event.time)
        self.last = max(self.last, event.time)
        self.evidence.append((event.time, event.source_file, event.source_ref))
        if len(self.samples) < _SAMPLES:
            self.samples.append(event)


class Detector:
    """Feed it events, then ask for alerts. Rules are compiled once, when the rule set loads."""

    def __init__(self, ruleset: RuleSet, diagnostics: Diagnostics | None = None) -> None:
        self._ruleset = ruleset
        self._rules = ruleset.rules
        self._diagnostics = diagnostics if diagnostics is not None else Diagnostics()
        self._matchers: dict[Key, Matcher] = ruleset.matchers
        self._index = {id(rule.sigma): i for i, rule in enumerate(self._rules)}
        self._getters = [_group_getters(rule) for rule in self._rules]
        self._groups: list[dict[tuple[Any, ...], _Group]] = [{} for _ in self._rules]
        self._correlated = {
            self._index[id(ref.rule)]
            for rule in self._rules
            if isinstance(rule.sigma, SigmaCorrelationRule)
            for ref in rule.sigma.rules or ()
            if id(ref.rule) in self._index
        }
        self._matches: dict[int, list[SmbEvent]] = defaultdict(list)

    def feed(self, event: SmbEvent) -> None:
        """Evaluate every rule that can match this event and record the matches."""
        key = (event.source, event.action)
        matcher = self._matchers.get(key)
        if matcher is None:
            matcher = self._matchers[key] = self._build_matcher(key)
        try:
            hits = matcher(event)
        except Exception as error:  # a producer broke the contract's types; keep going
            self._diagnostics.warn("detect_bad_event", f"{event.source_file}: {error!r}")
            return
        for index in hits:
            self._record(index, event)

    def feed_all(self, events: Iterable[SmbEvent]) -> None:
        for event in events:
            self.feed(event)

    def alerts(self) -> list[dict[str, Any]]:
        """All alerts so far, highest risk first, then earliest."""
        out: list[dict[str, Any]] = []
        for index, rule in enumerate(self._rules):
            if isinstance(rule.sigma, SigmaCorrelationRule):
                groups = self._correlate(rule)
            elif rule.generate:
                groups = list(self._groups[index].values())
            else:
                continue
            out.extend(_alert(rule, group) for group in groups)
        out.sort(key=lambda a: (-a["risk_score"], a["first_time"] or "", a["title"]))
        return out

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

    def _record(self, index: int, event: SmbEvent) -> None:
        rule = self._rules[index]
        if index in self._correlated:
            self._matches[index].append(event)
        if not rule.generate:
            return
        values = tuple(get(event) for get in self._getters[index])
        if rule.require_group_fields and any(v is None for v in values):
            return
        key = tuple(_hashable(v) for v in values)
        group = self._groups[index].get(key)
        if group is None:
            group = self._groups[index][key] = _Group(values, event.time, event.time)
        group.add(event)

    # --- correlation -------------------------------------------------------------------------
    def _correlate(self, rule: Rule) -> list[_Group]:
        sigma = rule.sigma
        assert isinstance(sigma, SigmaCorrelationRule)
        if rule.warnings:  # a construct smbwatch cannot evaluate: the rule never fires
            return []
        timeline: dict[tuple[Any, ...], list[tuple[int, int, SmbEvent]]] = defaultdict(list)
        names = [ref.reference for ref in sigma.rules or ()]
        for position, ref in enumerate(sigma.rules or ()):
            index = self._index[id(ref.rule)]
            getters = _correlation_getters(sigma, ref.reference, self._rules[index].zeek)
            for event in self._matches.get(index, ()):
                values = tuple(get(event) for get in getters)
                if any(v is None for v in values):
                    continue  # Sigma: events without the group-by fields do not correlate
                timeline[values].append((event.time, position, event))
        span = sigma.timespan.seconds * 1_000_000
        groups = []
        for values, entries in timeline.items():
            entries.sort(key=lambda entry: (entry[0], entry[1]))
            for chosen in _windows(sigma, entries, span, len(names)):
                group = _Group(values, chosen[0][0], chosen[0][0])
                for *_, event in chosen:
                    group.add(event)
                groups.append(group)
        return groups


def _windows(
    sigma: SigmaCorrelationRule, entries: list[tuple[int, int, SmbEvent]], span: int, n: int
) -> Iterable[list[tuple[int, int, SmbEvent]]]:
    """The event windows (within ``span``) that satisfy a correlation, without overlap."""
    if sigma.type == SigmaCorrelationType.TEMPORAL_ORDERED:
        yield from _ordered(entries, span, n)
        return
    condition = sigma.condition
    assert isinstance(condition, SigmaCorrelationCondition)
    start = 0
    for end in range(len(entries)):
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
            yield window
            start = end + 1


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
def _alert(rule: Rule, group: _Group) -> dict[str, Any]:
    by = dict(zip(_group_names(rule), group.values, strict=True))
    evidence = sorted(group.evidence, key=lambda item: item[0])
    events = sorted(group.samples, key=lambda e: e.time)
    alert: dict[str, Any] = {
        "rule_id": rule.rule_id,
        "title": rule.title,
        "severity": rule.level,
        "risk_score": rule.risk_score,
        "message": _message(rule, by, events),
        "attack": list(rule.attack),
        "first_time": format_time(group.first),
        "last_time": format_time(group.last),
        "count": len(evidence),
    }
    alert.update(by)
    alert["evidence"] = [{"source_file": f, "source_ref": ref} for _, f, ref in evidence]
    return alert


def _message(rule: Rule, by: dict[str, Any], events: list[SmbEvent]) -> str:
    """The rule's template with each ``$field$`` filled, or the title and the group values."""
    if rule.message is None:
        shown = ", ".join(f"{k}={v}" for k, v in by.items() if v is not None)
        return f"{rule.title}: {shown}" if shown else rule.title
    return TEMPLATE_FIELD.sub(
        lambda m: _template_value(m.group(1), by, events, rule.zeek), rule.message
    )


def _template_value(name: str, by: dict[str, Any], events: list[SmbEvent], zeek: bool) -> str:
    value = by.get(name)
    if value is None:
        get = fields.getter(name, zeek)
        if get is None:
            return f"${name}$"
        value = next((v for e in events if (v := get(e)) is not None), None)
    return _MISSING if value is None else str(value)


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


def _hashable(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def detect(
    events: Iterable[SmbEvent], ruleset: RuleSet, diagnostics: Diagnostics | None = None
) -> list[dict[str, Any]]:
    """Run ``ruleset`` over ``events`` and return the alerts (highest risk first)."""
    detector = Detector(ruleset, diagnostics)
    detector.feed_all(events)
    return detector.alerts()
