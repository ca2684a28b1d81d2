"""Sigma detections compiled to Python source, once, so that matching an event costs a few
comparisons on local variables instead of a walk over a condition tree per event per rule.

A rule's condition (pySigma's parsed tree) becomes AND-ed Python expressions. The rules that can
match one kind of event are generated into one function: terms several rules share are tested
once, and each field is read once, where a test first needs it, already lower-cased for Sigma's
case-insensitive matching (literals are lower-cased at compile time). Rule text only ever
enters the generated source through ``repr()`` of a string or number, so a hostile rule cannot
inject code.

A construct smbwatch cannot evaluate (an unresolved placeholder, a field no event has, a query
expression) compiles to ``False`` and is reported once, naming the rule and the construct.
"""

from __future__ import annotations

import io
import ipaddress
import re
import tokenize
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from smbwatch.detect import fields
from smbwatch.detect.fields import Field
from smbwatch.events import FIELD_NAMES, SmbEvent

# Dispatch keys: (source, action); "*" stands for every action of that source. A rule's key set
# says on which events it can match at all; None means any event.
Key = tuple[str, str]
KeySet = frozenset[Key] | None
ANY_ACTION = "*"

_COMPARE = {
    CompareOperators.LT: "<",
    CompareOperators.LTE: "<=",
    CompareOperators.GT: ">",
    CompareOperators.GTE: ">=",
    CompareOperators.NEQ: "!=",
}
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: re.IGNORECASE,
    SigmaRegularExpressionFlag.MULTILINE: re.MULTILINE,
    SigmaRegularExpressionFlag.DOTALL: re.DOTALL,
}
_EAGER_READERS = 3  # a field this many rules read is read once when the matcher starts
_UNSET = object()  # a field variable not computed yet on this path
_EVENT_ID_EXPR = fields.WINDOWS_FIELDS["EventID"].exprs
_ACTION_EXPR = fields.CONTRACT_FIELDS["action"].exprs


@dataclass(frozen=True, slots=True)
class Operand:
    """A value in generated code: ``first`` where it is first read, ``again`` for later reads.

    A lower-cased field variable is ``''`` when the field is missing (``maybe_none`` False), so
    its tests need no None check; ``raw`` then tells missing from empty, for the patterns that
    match an empty text.
    """

    first: str
    again: str
    maybe_none: bool = True
    raw: Operand | None = None


@dataclass
class Compiled:
    """One rule's condition as AND-ed Python expressions, and the event kinds it can match."""

    terms: list[str]
    keys: KeySet
    warnings: list[str] = field(default_factory=list)

    @property
    def code(self) -> str:
        return self.terms[0] if len(self.terms) == 1 else "(" + " and ".join(self.terms) + ")"


class Compiler:
    """Turns condition trees into expressions; owns the shared field variables and constants.

    One Compiler serves a whole rule set, so that two rules reading the same field share the
    variable that holds it.
    """

    def __init__(self) -> None:
        self._vars: dict[tuple[str, str], str] = {}  # (field expression, form) → variable name
        self._var_code: dict[str, str] = {}  # variable name → its assignment's right-hand side
        self.constants: dict[str, Any] = dict(fields.NAMESPACE)
        self.constants.update(
            _keyword_text=_keyword_text, _in_cidr=_in_cidr, _num=_num, _low=_low, _UNSET=_UNSET
        )
        self._warnings: list[str] = []
        self._zeek = False

    def compile(self, condition: Any, zeek: bool = False) -> Compiled:
        """Compile one parsed Sigma condition; ``zeek`` selects Zeek's meaning of ``path``."""
        self._warnings = []
        self._zeek = zeek
        expr = self._node(condition)
        return Compiled(expr.terms, expr.keys, self._warnings)

    def matcher_source(self, entries: list[tuple[int, list[str]]]) -> str:
        """One function evaluating several rules (index, terms); it returns the matching indexes.

        A term several rules share (``EventID == 5145``, ``ShareName == \\\\*\\IPC$``) is
        tested once and the rules that need it are nested under it, and a field is read where a
        test first needs it, once, so an event pays for the rules that concern it.
        """
        emitter = _Emitter(self._var_code)
        readers = Counter(name for _, terms in entries for name in set(_names(" and ".join(terms))))
        everywhere = {name for name, count in readers.items() if count >= _EAGER_READERS}
        emitter.emit(entries, 1, emitter.assign(" ".join(sorted(everywhere)), "    ", set()))
        head = ["def _matcher(e):", "    hits = []"]
        if emitter.guarded:
            head.append("    " + " = ".join(sorted(emitter.guarded)) + " = _UNSET")
        return "\n".join([*head, *emitter.lines, "    return hits"]) + "\n"

    # --- condition tree -------------------------------------------------------------------
    def _node(self, node: Any) -> _Expr:
        if isinstance(node, ConditionAND):
            return _all_of([self._node(arg) for arg in node.args])
        if isinstance(node, ConditionOR):
            return _any_of(self._or_parts(node.args))
        if isinstance(node, ConditionNOT):
            inner = self._node(node.args[0])
            if inner.code in (TRUE.code, FALSE.code):
                return FALSE if inner.code == TRUE.code else TRUE
            return _leaf(f"(not {inner.code})", None)
        if isinstance(node, ConditionFieldEqualsValueExpression):
            return self._field_item(node.field, node.value)
        if isinstance(node, ConditionValueExpression):
            return _leaf(self._keyword(node.value), None)
        self._warn(f"condition element {type(node).__name__}")
        return FALSE

    def _or_parts(self, args: list[Any]) -> list[_Expr]:
        """OR-ed items, with the plain patterns on one field merged into a single test.

        ``RelativeTargetName|endswith: [.exe, .dll, ...]`` reads the field once and becomes one
        ``endswith((...))``; a list of exact values one set membership test.
        """
        slots: list[Any] = []  # an item to compile alone, or the field name of a merged group
        merged: dict[Any, list[tuple[Any, tuple[str, str]]]] = {}
        for arg in args:
            name, pattern = self._plain_pattern(arg)
            if name is None or pattern is None:
                slots.append(arg)
                continue
            if name not in merged:
                merged[name] = []
                slots.append((name,))
            merged[name].append((arg, pattern))
        parts = []
        for slot in slots:
            if not isinstance(slot, tuple):
                parts.append(self._node(slot))
            elif len(merged[slot[0]]) == 1:
                parts.append(self._node(merged[slot[0]][0][0]))
            else:
                parts.append(self._merged(slot[0], merged[slot[0]]))
        return parts

    def _plain_pattern(self, node: Any) -> tuple[Any, tuple[str, str] | None]:
        """(group, (test, lower-cased text)) for an item that is a plain string pattern; the
        group is the field's spec (items on one field merge) or _KEYWORD."""
        spec = None
        if isinstance(node, ConditionValueExpression):
            group, value = _KEYWORD, node.value
        elif isinstance(node, ConditionFieldEqualsValueExpression):
            value = node.value
            group = spec = self._resolve(node.field, value)
            if spec is None or spec.kind == "int":
                return None, None
        else:
            return None, None
        if type(value) is not SigmaString or value.contains_placeholder():
            return None, None
        parts = list(value.s)
        if group is _KEYWORD:  # a keyword is a substring search
            parts = _star_around(parts)
        star = SpecialChars.WILDCARD_MULTI
        texts = [p.lower() for p in parts if isinstance(p, str)]
        if any(p == SpecialChars.WILDCARD_SINGLE for p in parts) or texts in ([], [""]):
            return None, None
        if len(texts) != 1:
            return None, None
        if spec is not None and spec.exprs == _ACTION_EXPR and texts[0].startswith("smb::"):
            return None, None  # a Zeek action, translated by _field_item
        shape = tuple(p == star for p in parts)
        test = {
            (False,): "eq",
            (True, False): "suffix",
            (False, True): "prefix",
            (True, False, True): "contains",
        }.get(shape)
        return group, ((test, texts[0]) if test else None)

    def _merged(self, group: Any, items: list[tuple[Any, tuple[str, str]]]) -> _Expr:
        patterns = [pattern for _, pattern in items]
        if group is _KEYWORD:
            return _leaf(self._pattern_test(Operand("(t_ := _keyword_text(e))", "t_"), patterns))
        spec: Field = group
        tests = [
            self._pattern_test(self._var(spec, i, "low"), patterns) for i in range(len(spec.exprs))
        ]
        keys: KeySet = frozenset()
        for node, _ in items:
            keys = _union(keys, _item_keys(spec, node.value))
        return _leaf(tests[0] if len(tests) == 1 else "(" + " or ".join(tests) + ")", keys)

    def _pattern_test(self, value: Operand, patterns: list[tuple[str, str]]) -> str:
        """One test of many plain patterns against a value, reading it once."""
        by_test: dict[str, list[str]] = {}
        for test, text in patterns:
            by_test.setdefault(test, []).append(text)
        again = value.again
        tests = []
        if "eq" in by_test:
            equal = by_test["eq"]
            if len(equal) == 1:
                tests.append(f"{again} == {equal[0]!r}")
            else:
                tests.append(f"{again} in {self._constant(frozenset(equal))}")
        for test, method in (("prefix", "startswith"), ("suffix", "endswith")):
            if test in by_test:
                tests.append(f"{again}.{method}({tuple(by_test[test])!r})")
        tests.extend(f"{text!r} in {again}" for text in by_test.get("contains", ()))
        if not value.maybe_none:
            return f"({' or '.join(tests)})"
        return f"({value.first} is not None and ({' or '.join(tests)}))"

    def _resolve(self, name: str, value: Any) -> Field | None:
        """The field a rule item reads; a bare ``ADMIN$`` for ShareName reads the share name."""
        spec = fields.lookup(name, self._zeek)
        if spec is fields.WINDOWS_FIELDS["ShareName"] and _is_bare_name(value):
            return fields.CONTRACT_FIELDS["share_name"]  # Windows logs \\*\ADMIN$
        return spec

    def _field_item(self, name: str, value: Any) -> _Expr:
        spec = self._resolve(name, value)
        if spec is None:
            self._warn(f"field '{name}' (no smbwatch event has it)")
            return FALSE
        if spec.exprs == _ACTION_EXPR and isinstance(value, SigmaString):
            translated = fields.ZEEK_ACTIONS.get(str(value).lower())
            if translated:
                value = SigmaExpansion([SigmaString(action) for action in translated])
        code = self._value(spec, name, value)
        return _leaf(code, _item_keys(spec, value)) if code != "False" else FALSE

    def _value(self, spec: Field, name: str, value: Any) -> str:
        if isinstance(value, SigmaExpansion):
            return "(" + " or ".join(self._value(spec, name, v) for v in value.values) + ")"
        alternatives = [self._leaf(spec, i, name, value) for i in range(len(spec.exprs))]
        return alternatives[0] if len(alternatives) == 1 else "(" + " or ".join(alternatives) + ")"

    def _leaf(self, spec: Field, index: int, name: str, value: Any) -> str:
        raw = self._var(spec, index, "raw")
        if isinstance(value, SigmaString):
            if value.contains_placeholder():
                names = ", ".join(f"%{p.name}%" for p in value.s if isinstance(p, Placeholder))
                self._warn(f"placeholder {names} (|expand) on '{name}', which has no value")
                return "False"
            if isinstance(value, SigmaCasedString):
                return _string_test(raw, value.s, cased=True, constants=self.constants)
            if spec.kind == "int" and not value.contains_special():
                number = _parse_int(str(value))
                if number is not None:
                    return f"{raw.first} == {number!r}"
            low = self._var(spec, index, "low")
            return _string_test(low, value.s, cased=False, constants=self.constants)
        if isinstance(value, SigmaNumber):
            if spec.kind == "int":
                return f"{raw.first} == {value.number!r}"
            return f"_num({raw.first}) == {value.number!r}"  # AccessMask '0x2' equals 2
        if isinstance(value, SigmaBool):
            if spec.kind == "str":
                low = self._var(spec, index, "low")
                return f"{low.first} == {str(value.boolean).lower()!r}"
            return f"{raw.first} is {value.boolean!r}"
        if isinstance(value, SigmaNull):
            return f"({raw.first} is None or {raw.again} == '')"
        if isinstance(value, SigmaExists):
            return f"({raw.first} is {'not ' if value.exists else ''}None)"
        if isinstance(value, SigmaRegularExpression):
            flags = 0
            for flag in value.flags:
                flags |= _RE_FLAGS[flag]
            regex = self._constant(re.compile(str(value.regexp), flags))
            text = raw.again if spec.kind == "str" else f"str({raw.again})"
            return f"({raw.first} is not None and {regex}.search({text}) is not None)"
        if isinstance(value, SigmaCIDRExpression):
            network = self._constant(ipaddress.ip_network(value.cidr, strict=False))
            return f"_in_cidr({raw.first}, {network})"
        if isinstance(value, SigmaCompareExpression):
            op = _COMPARE[value.op]
            return f"((n_ := _num({raw.first})) is not None and n_ {op} {value.number.number!r})"
        if isinstance(value, SigmaFieldReference):
            return self._field_reference(spec, index, value)
        self._warn(f"value type {type(value).__name__} on '{name}'")
        return "False"

    def _field_reference(self, spec: Field, index: int, ref: SigmaFieldReference) -> str:
        other = fields.lookup(ref.field, self._zeek)
        if other is None or other.costly or spec.costly:
            self._warn(f"field reference to '{ref.field}'")
            return "False"
        mine, theirs = self._var(spec, index, "low"), self._var(other, 0, "low")
        test = f"{mine.first} == {theirs.first}"
        if ref.starts_with:
            test = f"{mine.first}.startswith({theirs.first})"
        elif ref.ends_with:
            test = f"{mine.first}.endswith({theirs.first})"
        assert mine.raw is not None and theirs.raw is not None
        return f"({mine.raw.first} is not None and {theirs.raw.first} is not None and {test})"

    def _keyword(self, value: Any) -> str:
        """A value without a field: full-text search over the event's values (substring)."""
        if not isinstance(value, SigmaString) or value.contains_placeholder():
            self._warn(f"keyword of type {type(value).__name__}")
            return "False"
        return _string_test(
            Operand("(t_ := _keyword_text(e))", "t_"),
            _star_around(list(value.s)),
            False,
            self.constants,
        )

    # --- variables and constants ------------------------------------------------------------
    def _var(self, spec: Field, index: int, form: str) -> Operand:
        """Where a field's value (``raw``) or its lower-cased text (``low``) is read from.

        Cheap fields become variables assigned once; costly ones are computed where used (``t_``).
        """
        expr = spec.exprs[index]
        if spec.costly:
            computed = f"_low({expr})" if form == "low" else expr
            return Operand(f"(t_ := {computed})", "t_")
        name = self._vars.get((expr, form))
        if name is None:
            name = f"{form[0]}{len(self._vars)}"
            if form == "raw":
                self._var_code[name] = expr
            else:
                text = "v_" if spec.kind == "str" else "str(v_)"
                self._var_code[name] = f"{text}.lower() if (v_ := {expr}) is not None else ''"
            self._vars[(expr, form)] = name
        if form == "low":
            return Operand(name, name, False, self._var(spec, index, "raw"))
        return Operand(name, name)

    def _constant(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name

    def _warn(self, construct: str) -> None:
        if construct not in self._warnings:
            self._warnings.append(construct)


def _string_test(value: Operand, parts: list[Any], cased: bool, constants: dict[str, Any]) -> str:
    """Python test of a Sigma string pattern (wildcards ``*`` and ``?``) against ``value``."""
    first, again = value.first, value.again
    guard = f"{first} is not None and " if value.maybe_none else ""
    after = again if value.maybe_none else first
    texts = [p if cased else p.lower() for p in parts if isinstance(p, str)]
    star = SpecialChars.WILDCARD_MULTI
    if not any(isinstance(p, SpecialChars) for p in parts):
        literal = "".join(texts)
        if literal == "" and value.raw is not None:  # empty, not missing
            return f"({value.raw.first} is not None and {first} == '')"
        return f"{first} == {literal!r}"
    if all(p == star for p in parts):
        return f"({(value.raw or value).first} is not None)"
    if len(parts) == 2 and parts[0] == star and isinstance(parts[1], str):
        return f"({guard}{after}.endswith({texts[0]!r}))"
    if len(parts) == 2 and parts[1] == star and isinstance(parts[0], str):
        return f"({guard}{after}.startswith({texts[0]!r}))"
    if len(parts) == 3 and parts[0] == star == parts[2] and isinstance(parts[1], str):
        return f"({guard}{texts[0]!r} in {after})"
    regex = "".join(
        ".*"
        if p == star
        else "."
        if p == SpecialChars.WILDCARD_SINGLE
        else re.escape(p if cased else p.lower())
        for p in parts
    )
    name = f"_k{len(constants)}"
    constants[name] = re.compile(regex, re.DOTALL)
    return f"({guard}{name}.fullmatch({after}) is not None)"


class _Expr(NamedTuple):
    """A compiled (sub)condition: its code, the event kinds it admits, its AND-ed terms."""

    code: str
    keys: KeySet
    terms: list[str]


def _leaf(code: str, keys: KeySet = None) -> _Expr:
    return _Expr(code, keys, [code])


TRUE = _Expr("True", None, [])
FALSE = _Expr("False", frozenset(), ["False"])
_KEYWORD = object()  # the group of keyword (field-less) items


def _all_of(parts: list[_Expr]) -> _Expr:
    """AND, with constants folded: a False term makes it False, True terms drop out."""
    if any(part.code == FALSE.code for part in parts):
        return FALSE
    parts = [part for part in parts if part.code != TRUE.code]
    if not parts:
        return TRUE
    keys: KeySet = None
    for part in parts:
        keys = intersect(keys, part.keys)
    terms = [term for part in parts for term in part.terms]
    code = terms[0] if len(terms) == 1 else "(" + " and ".join(terms) + ")"
    return _Expr(code, keys, terms)


def _any_of(parts: list[_Expr]) -> _Expr:
    """OR, with constants folded: a True part makes it True, False parts drop out."""
    if any(part.code == TRUE.code for part in parts):
        return TRUE
    parts = [part for part in parts if part.code != FALSE.code]
    if not parts:
        return FALSE
    if len(parts) == 1:
        return parts[0]
    keys: KeySet = frozenset()
    for part in parts:
        keys = _union(keys, part.keys)
    return _leaf("(" + " or ".join(part.code for part in parts) + ")", keys)


class _Emitter:
    """Writes the body of a matcher function: nested tests, field variables assigned once."""

    def __init__(self, var_code: dict[str, str]) -> None:
        self.var_code = var_code
        self.lines: list[str] = []
        self.assigned: set[str] = set()  # assigned somewhere above (maybe on another branch)
        self.guarded: set[str] = set()  # assigned under a guard: initialised to _UNSET first

    def emit(self, entries: list[tuple[int, list[str]]], depth: int, computed: set[str]) -> None:
        pad = "    " * depth
        computed = set(computed)  # what a nested block computes is unknown after it
        while entries:
            counts = Counter(term for _, terms in entries for term in set(terms))
            shared = max(counts, key=lambda t: (counts[t], "t_ :=" not in t, -len(t)), default="")
            if counts.get(shared, 0) < 2:
                break
            self.assign(shared, pad, computed)
            self.lines.append(f"{pad}if {shared}:")
            inner = [
                (i, [t for t in terms if t != shared]) for i, terms in entries if shared in terms
            ]
            self.emit(inner, depth + 1, computed)
            entries = [(i, terms) for i, terms in entries if shared not in terms]
        for index, terms in entries:  # one nested test per term: fields read only when needed
            indent, known = pad, set(computed)
            for term in terms:
                self.assign(term, indent, known)
                self.lines.append(f"{indent}if {term}:")
                indent += "    "
            self.lines.append(f"{indent}hits.append({index})")

    def assign(self, code: str, pad: str, computed: set[str]) -> set[str]:
        """Assign the field variables ``code`` reads that this branch has not computed yet."""
        for name in _names(code):
            if name not in self.var_code or name in computed:
                continue
            value = self.var_code[name]
            if name in self.assigned:  # computed on an earlier branch, perhaps
                self.guarded.add(name)
                self.lines.append(f"{pad}if {name} is _UNSET:")
                self.lines.append(f"{pad}    {name} = {value}")
            else:
                self.lines.append(f"{pad}{name} = {value}")
                self.assigned.add(name)
            computed.add(name)
        return computed


def _names(code: str) -> tuple[str, ...]:
    """The names a piece of generated code reads, in order (never text inside its literals)."""
    tokens = tokenize.generate_tokens(io.StringIO(code).readline)
    return tuple(dict.fromkeys(t.string for t in tokens if t.type == tokenize.NAME))


def _is_bare_name(value: Any) -> bool:
    """A share written without its UNC prefix: a plain string with no backslash."""
    return type(value) is SigmaString and not any(isinstance(p, str) and "\\" in p for p in value.s)


def _star_around(parts: list[Any]) -> list[Any]:
    """A pattern made a substring search: ``*`` added at either end unless already there."""
    star = SpecialChars.WILDCARD_MULTI
    return (
        ([] if parts[:1] == [star] else [star]) + parts + ([] if parts[-1:] == [star] else [star])
    )


def _item_keys(spec: Field, value: Any) -> KeySet:
    """Which (source, action) pairs an ``EventID``/``action`` item admits; None for other items."""
    values = value.values if isinstance(value, SigmaExpansion) else [value]
    keys: set[Key] = set()
    for one in values:
        if isinstance(one, SigmaString) and not one.contains_special():
            text = str(one)
        elif isinstance(one, SigmaNumber):
            text = str(one.number)
        else:
            return None
        if spec.exprs == _EVENT_ID_EXPR:
            number = _parse_int(text)
            if number is None:
                return None
            keys.add(("host", fields.HOST_ACTIONS.get(number, ANY_ACTION)))
            keys.update(("network", a) for a, n in fields.NETWORK_EVENT_IDS.items() if n == number)
        elif spec.exprs == _ACTION_EXPR:
            keys.update({("host", text.lower()), ("network", text.lower())})
        else:
            return None
    return frozenset(keys)


def intersect(a: KeySet, b: KeySet) -> KeySet:
    if a is None:
        return b
    if b is None:
        return a
    out = set()
    for source, action in a:
        for source2, action2 in b:
            if source != source2:
                continue
            if action == action2 or action2 == ANY_ACTION:
                out.add((source, action))
            elif action == ANY_ACTION:
                out.add((source, action2))
    return frozenset(out)


def _union(a: KeySet, b: KeySet) -> KeySet:
    return None if a is None or b is None else a | b


def admits(keys: KeySet, key: Key) -> bool:
    """Whether a rule with ``keys`` can match an event with dispatch ``key``."""
    return keys is None or key in keys or (key[0], ANY_ACTION) in keys


def _low(value: Any) -> str | None:
    return None if value is None else str(value).lower()


def _parse_int(text: str) -> int | None:
    text = text.strip().lower()
    try:
        return int(text, 16) if text.startswith("0x") else int(text)
    except ValueError:
        return None


def _num(value: Any) -> int | float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return _parse_int(str(value)) if value is not None else None


@lru_cache(maxsize=4096)  # addresses come from the wire: bounded
def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _in_cidr(value: str | None, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    address = _parse_ip(value) if value else None
    return address is not None and address.version == network.version and address in network


_TEXT_FIELDS = tuple(name for name in FIELD_NAMES if name != "time")


def _keyword_text(e: SmbEvent) -> str:
    """Every value of the event as one lower-cased text, for Sigma keyword (full-text) search."""
    values = (getattr(e, name) for name in _TEXT_FIELDS)
    return "\n".join(str(v) for v in values if v is not None).lower()
