"""One schema for the event record: SmbEvent's declared fields, its hand-unrolled ``fields()``
and the README's field table all say what ``smbwatch.schema`` says."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from smbwatch import schema
from smbwatch.events import FIELD_NAMES, SmbEvent, columns, from_stored

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
EVENTS_SOURCE = REPO / "src" / "smbwatch" / "events.py"


def _smbevent_class() -> ast.ClassDef:
    tree = ast.parse(EVENTS_SOURCE.read_text())
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SmbEvent")


def _method(name: str) -> ast.FunctionDef:
    return next(
        n for n in _smbevent_class().body if isinstance(n, ast.FunctionDef) and n.name == name
    )


def test_the_record_declares_the_schema_fields_in_order_with_their_types() -> None:
    declared = [
        (node.target.id, ast.unparse(node.annotation))
        for node in _smbevent_class().body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    ]
    assert declared == [(field.name, field.python) for field in schema.FIELDS]
    assert FIELD_NAMES == schema.NAMES  # what the installed (maybe compiled) class reports


def test_the_unrolled_fields_method_reads_every_schema_field_in_order() -> None:
    method = _method("fields")
    first = next(n for n in method.body if isinstance(n, ast.AnnAssign))
    assert isinstance(first.value, ast.Dict)
    names = [key.value for key in first.value.keys if isinstance(key, ast.Constant)]
    for node in method.body:
        if isinstance(node, ast.If):
            (assign,) = node.body
            assert isinstance(assign, ast.Assign)
            (target,) = assign.targets
            assert isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant)
            assert isinstance(assign.value, ast.Attribute)
            assert assign.value.attr == target.slice.value  # out["x"] = self.x
            names.append(target.slice.value)
    assert tuple(names) == schema.NAMES


def test_the_readme_field_table_is_the_schema() -> None:
    readme = (REPO / "README.md").read_text()
    start = readme.index("| field | type | meaning |")
    end = readme.index("\n\n", start)
    assert readme[start : end + 1] == schema.readme_table()


def test_values_of_each_kind_are_accepted_by_the_record() -> None:
    samples = {
        schema.TEXT: "x",
        schema.INTEGER: -1,
        schema.UNSIGNED: 2**64 - 1,
        schema.BOOLEAN: True,
        schema.TEXT_LIST: ["a"],
        schema.OBJECT: {"a": 1},
        schema.OBJECT_LIST: [{"a": 1}],
    }
    for field in schema.FIELDS[3:]:
        event = SmbEvent(0, "network", "open", **{field.name: samples[field.kind]})
        assert event.fields()[field.name] == samples[field.kind]


def test_the_unrolled_store_in_puts_each_schema_field_in_its_column() -> None:
    method = _method("store_in")
    stored = []
    for node in method.body:
        if isinstance(node, ast.Assign):
            (target,) = node.targets  # columns[i][row] = self.name
            assert isinstance(target, ast.Subscript) and isinstance(target.value, ast.Subscript)
            assert isinstance(target.value.slice, ast.Constant)
            assert isinstance(node.value, ast.Attribute)
            stored.append((target.value.slice.value, node.value.attr))
    assert stored == list(enumerate(schema.NAMES))
    event = SmbEvent(5, "host", "logon", user="x", access_list=["a"], session_id="0x1")
    found = columns([event, SmbEvent(6, "network", "open")])
    assert [column[0] for column in found] == [event.fields().get(n) for n in schema.NAMES]
    assert [column[1] for column in found][:4] == [6, "network", "open", None]


def test_the_unrolled_load_from_reads_each_schema_field_from_its_column() -> None:
    method = _method("load_from")
    loaded = []
    for node in method.body:
        if isinstance(node, ast.Assign):
            (target,) = node.targets  # self.name = columns[i][row]
            assert isinstance(target, ast.Attribute) and isinstance(node.value, ast.Subscript)
            assert isinstance(node.value.value, ast.Subscript)
            assert isinstance(node.value.value.slice, ast.Constant)
            loaded.append((node.value.value.slice.value, target.attr))
    assert loaded == list(enumerate(schema.NAMES))
    events = [
        SmbEvent(5, "host", "logon", user="x", access_list=["a"], session_id="0x1"),
        SmbEvent(6, "network", "close", sha256="ab", rpc_args={"k": [1]}, src_port=445),
    ]
    assert from_stored(columns(events), 2) == events
