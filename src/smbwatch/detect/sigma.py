"""Loading rules: Sigma YAML files (built-in and the user's), parsed by pySigma, with smbwatch's
own metadata under the top-level key ``smbwatch:`` and compiled once into Python code.

The ``smbwatch:`` key (pySigma keeps unknown top-level keys as custom attributes) holds what Sigma
has no place for:

```yaml
smbwatch:
  risk_score: 70                    # 0-100; default from the Sigma level
  message: "$user$ dropped $Relative_Target_Name$"   # $field$ filled from the alert's events
  group_by: [Share_Name, user]      # one alert per distinct value tuple (default: who/where/what)
  require_group_fields: true        # like Splunk's ``stats ... by``: drop events missing one
  family: remote-service-install    # alerts of one family on one action are merged into one
  exclude: [localhost, domain_controllers]   # events that never count for this rule
```

``exclude``: ``localhost`` drops events whose client is the server itself (a loopback address,
or the same address at both ends); ``domain_controllers`` drops events whose client is a domain
controller, or is a domain controller's own machine account, as the inputs show them
(:mod:`smbwatch.detect.domain`).

ATT&CK technique ids come from the rule's standard Sigma tags (``attack.t1021.002``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import (
    SigmaCorrelationCondition,
    SigmaCorrelationRule,
    SigmaCorrelationType,
)
from sigma.rule import SigmaRule

from smbwatch.detect import fields
from smbwatch.detect.alert import ALERT_FIELDS
from smbwatch.detect.compiler import Compiled, Compiler, KeySet, intersect

METADATA_KEY = "smbwatch"
BUILTIN_ORIGIN = "built-in"
RULE_SUFFIXES = (".yml", ".yaml")
# libyaml's parser where PyYAML has it: the same documents as its safe loader, at a tenth of its
# cost (0.12 s of every detect's start on the built-in and 22 shared rules).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Risk score of a rule that does not set one, from its Sigma level.
LEVEL_RISK = {"informational": 5, "low": 25, "medium": 50, "high": 75, "critical": 100}
# One alert per who / where / what (contract names), when a rule does not say how to group.
DEFAULT_GROUP_BY = ("src_ip", "dst_ip", "server", "user", "share", "path", "rpc_operation")
EXCLUSIONS = ("localhost", "domain_controllers")
SUPPORTED_CORRELATIONS = {
    SigmaCorrelationType.EVENT_COUNT,
    SigmaCorrelationType.VALUE_COUNT,
    SigmaCorrelationType.TEMPORAL,
    SigmaCorrelationType.TEMPORAL_ORDERED,
}
RESERVED_ALERT_FIELDS = frozenset((*ALERT_FIELDS, "evidence"))
# ``$field$`` in a message template (a ``$`` elsewhere, as in ``ADMIN$``, is plain text).
TEMPLATE_FIELD = re.compile(r"\$([A-Za-z_][\w.]*)\$")
_ATTACK_TECHNIQUE = re.compile(r"t\d{4}(\.\d{3})?", re.IGNORECASE)

# Events each Zeek log describes, as (source, action) dispatch keys; Zeek-flavoured rules only
# run on these (smb_files also on the host's 5145, its equivalent).
_FILE_ACTIONS = ("open", "create", "read", "write", "close", "delete", "rename", "set_info")
ZEEK_LOG_KEYS: dict[str, KeySet] = {
    "smb_files": frozenset([("network", a) for a in _FILE_ACTIONS] + [("host", "access_check")]),
    "smb_mapping": frozenset({("network", "tree_connect"), ("host", "tree_connect")}),
    "dce_rpc": frozenset({("network", "rpc_call")}),
}


class RuleError(Exception):
    """A rule file that cannot be used: a user error, reported as one line."""


@dataclass
class Rule:
    """One loaded rule (detection or correlation) with its smbwatch metadata."""

    rule_id: str
    title: str
    level: str | None
    origin: str  # file it came from ("built-in/NAME.yml" for shipped rules)
    sigma: SigmaRule | SigmaCorrelationRule
    risk_score: int
    message: str | None
    group_by: tuple[str, ...]
    require_group_fields: bool
    attack: tuple[str, ...]
    zeek: bool  # Zeek-flavoured: Zeek's meaning of ``path`` in its detection and template
    generate: bool  # raises alerts itself (False: only feeds a correlation)
    family: str | None = None  # alerts of one family on one action merge into one
    exclude: tuple[str, ...] = ()  # EXCLUSIONS: events that never count for this rule
    compiled: Compiled | None = None  # None for correlations
    warnings: list[str] = field(default_factory=list)

    @property
    def role(self) -> str:
        """``detection`` for a rule that raises alerts, ``helper`` for a building block."""
        return "detection" if self.generate else "helper"

    @property
    def kind(self) -> str:
        if isinstance(self.sigma, SigmaCorrelationRule):
            return f"correlation/{self.sigma.type}"
        return "detection"


@dataclass
class RuleSet:
    """Rules ready to run: compiled conditions and the shared constants their code uses."""

    rules: list[Rule]
    compiler: Compiler
    warnings: list[str] = field(default_factory=list)
    # One generated matcher per kind of event (source, action), built by the engine the first
    # time such an event comes, then shared by every Detector of this rule set.
    matchers: dict[tuple[str, str], Callable[[Any], list[int]]] = field(default_factory=dict)

    def listing(self) -> list[dict[str, Any]]:
        """What ``smbwatch rules list`` shows: one row per rule, in load order."""
        return [
            {
                "rule_id": rule.rule_id,
                "title": rule.title,
                "level": rule.level,
                "risk_score": rule.risk_score,
                "kind": rule.kind,
                "role": rule.role,
                "attack": list(rule.attack),
                "origin": rule.origin,
                "warnings": len(rule.warnings),
            }
            for rule in self.rules
        ]


def load_rules(paths: Iterable[str | Path] = (), builtin: bool = True) -> RuleSet:
    """Load the built-in rules (unless ``builtin`` is False) and the rule files/folders given.

    Raises RuleError for a missing path, a file that is not valid Sigma, a bad ``smbwatch:`` key
    or a correlation that refers to an unknown rule. Constructs smbwatch cannot evaluate are
    not errors: they become one-line warnings in ``RuleSet.warnings``.
    """
    sources: list[tuple[str, str]] = []  # (origin, YAML text)
    if builtin:
        sources.extend(_builtin_sources())
    for path in paths:
        sources.extend(_user_sources(Path(path)))
    parsed: list[tuple[str, SigmaRule | SigmaCorrelationRule]] = []
    for origin, text in sources:
        try:
            collection = SigmaCollection.from_dicts(list(yaml.load_all(text, Loader=_LOADER)))
        except Exception as error:  # pySigma and PyYAML raise many types for bad input
            raise RuleError(f"{origin}: not a valid Sigma rule: {_one_line(error)}") from None
        parsed.extend((origin, rule) for rule in collection.rules)
    return _build(parsed)


def _builtin_sources() -> Iterator[tuple[str, str]]:
    folder = resources.files("smbwatch.detect") / "rules"
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(RULE_SUFFIXES):
            yield f"{BUILTIN_ORIGIN}/{entry.name}", entry.read_text(encoding="utf-8")


def _user_sources(path: Path) -> Iterator[tuple[str, str]]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise RuleError(f"{path}: no such rule file or folder")
    for file in files:
        try:
            yield str(file), file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise RuleError(f"{file}: cannot read: {_one_line(error)}") from None


def _build(parsed: list[tuple[str, SigmaRule | SigmaCorrelationRule]]) -> RuleSet:
    warnings: list[str] = []
    seen: dict[str, str] = {}
    kept: list[tuple[str, SigmaRule | SigmaCorrelationRule]] = []
    for origin, sigma in parsed:
        rule_id = _rule_id(sigma, origin)
        if rule_id in seen:
            warnings.append(f"rule {rule_id} in {origin} was already loaded from {seen[rule_id]}")
            continue
        seen[rule_id] = origin
        kept.append((origin, sigma))
    collection = SigmaCollection([sigma for _, sigma in kept])
    try:
        collection.resolve_rule_references()
    except Exception as error:
        raise RuleError(f"rule reference: {_one_line(error)}") from None
    origins = {id(sigma): origin for origin, sigma in kept}
    compiler = Compiler()
    rules = []
    for sigma in collection.rules:
        origin = origins.get(id(sigma), BUILTIN_ORIGIN)
        rule = _rule(sigma, origin, compiler)
        warnings.extend(f"rule '{rule.title}' ({origin}): {text}" for text in rule.warnings)
        rules.append(rule)
    return RuleSet(rules, compiler, warnings)


def _rule(sigma: SigmaRule | SigmaCorrelationRule, origin: str, compiler: Compiler) -> Rule:
    meta = _metadata(sigma, origin)
    level = str(sigma.level) if sigma.level is not None else None
    zeek = isinstance(sigma, SigmaRule) and (sigma.logsource.product or "").lower() == "zeek"
    if isinstance(sigma, SigmaCorrelationRule):
        if "group_by" in meta:
            raise RuleError(f"{origin}: a correlation groups by its Sigma 'group-by'")
        group_by = tuple(sigma.group_by or ())
    else:
        group_by = tuple(meta.get("group_by") or ())
    rule = Rule(
        rule_id=_rule_id(sigma, origin),
        title=sigma.title or _rule_id(sigma, origin),
        level=level,
        origin=origin,
        sigma=sigma,
        risk_score=meta.get("risk_score", LEVEL_RISK.get(level or "", 50)),
        message=meta.get("message"),
        group_by=group_by,
        require_group_fields=meta.get("require_group_fields", False),
        attack=tuple(
            tag.name.upper()
            for tag in sigma.tags
            if tag.namespace == "attack" and _ATTACK_TECHNIQUE.fullmatch(tag.name)
        ),
        zeek=zeek,
        generate=sigma._output,
        family=meta.get("family"),
        exclude=tuple(meta.get("exclude") or ()),
    )
    rule.warnings.extend(
        f"'{name}' is not a field smbwatch knows; it stays empty"
        for name in (*group_by, *_template_fields(rule.message))
        if fields.lookup(name, zeek) is None
    )
    if isinstance(sigma, SigmaCorrelationRule):
        rule.warnings.extend(_correlation_limits(sigma))
        return rule
    rule.compiled = _compile_detection(sigma, compiler, zeek)
    rule.warnings.extend(
        f"cannot evaluate {w}; that item matches nothing" for w in rule.compiled.warnings
    )
    return rule


def _template_fields(message: str | None) -> list[str]:
    """The ``$field$`` names of a message template."""
    return TEMPLATE_FIELD.findall(message or "")


def _correlation_limits(sigma: SigmaCorrelationRule) -> list[str]:
    """What smbwatch cannot evaluate in a correlation rule (each makes the rule never fire)."""
    problems = []
    if sigma.type not in SUPPORTED_CORRELATIONS:
        problems.append(f"cannot evaluate correlation type {sigma.type}; the rule never fires")
    if not isinstance(sigma.condition, SigmaCorrelationCondition):
        problems.append("cannot evaluate an extended correlation condition; the rule never fires")
    for reference in sigma.rules or ():
        if isinstance(reference.rule, SigmaCorrelationRule):
            problems.append(
                f"cannot evaluate a correlation of correlation {reference.reference}; "
                "the rule never fires"
            )
    return problems


def _compile_detection(sigma: SigmaRule, compiler: Compiler, zeek: bool) -> Compiled:
    """All conditions of a rule (usually one), OR-ed, limited to the events its log source has."""
    parts = [
        compiler.compile(condition.parsed, zeek) for condition in sigma.detection.parsed_condition
    ]
    compiled = parts[0]
    if len(parts) > 1:  # several conditions (deprecated Sigma): any of them
        keys = parts[0].keys
        for part in parts[1:]:
            keys = None if keys is None or part.keys is None else keys | part.keys
        code = "(" + " or ".join(part.code for part in parts) + ")"
        warnings = list(dict.fromkeys(w for part in parts for w in part.warnings))
        compiled = Compiled([code], keys, warnings)
    if zeek:
        compiled.keys = intersect(
            compiled.keys, ZEEK_LOG_KEYS.get((sigma.logsource.service or "").lower())
        )
    return compiled


def _metadata(sigma: SigmaRule | SigmaCorrelationRule, origin: str) -> dict[str, Any]:
    meta = sigma.custom_attributes.get(METADATA_KEY) or {}
    checks = {
        "risk_score": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 100,
        "message": lambda v: isinstance(v, str),
        "group_by": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "require_group_fields": lambda v: isinstance(v, bool),
        "family": lambda v: isinstance(v, str) and bool(v),
        "exclude": lambda v: isinstance(v, list) and all(x in EXCLUSIONS for x in v),
    }
    if not isinstance(meta, dict):
        raise RuleError(f"{origin}: '{METADATA_KEY}:' must be a mapping")
    reserved = RESERVED_ALERT_FIELDS.intersection(meta.get("group_by") or ())
    if reserved:
        raise RuleError(f"{origin}: group_by field {sorted(reserved)[0]!r} is an alert field")
    for key, value in meta.items():
        check = checks.get(key)
        if check is None:
            raise RuleError(f"{origin}: unknown key '{METADATA_KEY}.{key}'")
        if not check(value):
            raise RuleError(f"{origin}: bad value for '{METADATA_KEY}.{key}': {value!r}")
    return meta


def _rule_id(sigma: SigmaRule | SigmaCorrelationRule, origin: str) -> str:
    if sigma.id is not None:
        return str(sigma.id)
    return sigma.name or f"{origin}:{sigma.title}"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
