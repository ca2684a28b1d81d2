"""The task definition XML of a scheduled task (MS-TSCH 2.5): what it runs, as whom, by whom.

The same XML travels in SchRpcRegisterTask on the wire and is logged by the target in its
4698/4702 records ("TaskContent"); both sources read it here. It comes from attackers, so expat
parses it with any DOCTYPE refused (no entity, internal or external, is ever expanded), the
text is bounded in size, and only the first ``MAX_ACTIONS`` actions are kept.
"""

from __future__ import annotations

from typing import Any, Final

MAX_TASK_XML_CHARS: Final = 1 << 20
MAX_ACTIONS: Final = 32

# Task XML elements reported, by their path below <Task> (namespace dropped).
_PRINCIPAL_FIELDS: Final = {
    ("Principals", "Principal", "UserId"): "user_id",
    ("Principals", "Principal", "GroupId"): "group_id",
    ("Principals", "Principal", "RunLevel"): "run_level",
    ("Principals", "Principal", "LogonType"): "principal_logon_type",
    ("Settings", "Hidden"): "hidden",
    ("RegistrationInfo", "Author"): "author",
}
_EXEC_FIELDS: Final = {
    "Command": "command",
    "Arguments": "arguments",
    "WorkingDirectory": "working_directory",
}


class TaskXmlError(ValueError):
    """Task XML that is malformed, too large, or declares a DOCTYPE."""


def _refuse_doctype(*_: object) -> None:
    raise TaskXmlError("task XML declares a DOCTYPE (entities refused)")


def parse_task_xml(xml: str) -> dict[str, Any]:
    """The actions (``command``/``arguments``, ``exec`` list) and principal of a task XML."""
    if len(xml) > MAX_TASK_XML_CHARS:
        raise TaskXmlError(f"task XML of {len(xml)} characters (at most {MAX_TASK_XML_CHARS})")
    from xml.parsers import expat  # here: a capture without a scheduled task never loads it

    parser = expat.ParserCreate(encoding="utf-8")  # the text is already decoded: ignore its prolog
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    path: list[str] = []
    text: list[str] = []
    actions: list[dict[str, str]] = []
    seen = [0]  # Exec elements met, kept or not
    found: dict[str, Any] = {}

    def start(name: str, _attributes: dict[str, str]) -> None:
        path.append(name.rsplit("}", 1)[-1])
        text.clear()
        if path[1:] == ["Actions", "Exec"]:
            seen[0] += 1
            if seen[0] <= MAX_ACTIONS:
                actions.append({})

    def end(_name: str) -> None:
        value = "".join(text).strip()
        inner = tuple(path[1:])
        if len(inner) == 3 and inner[:2] == ("Actions", "Exec") and seen[0] <= MAX_ACTIONS:
            if inner[2] in _EXEC_FIELDS:
                actions[-1][_EXEC_FIELDS[inner[2]]] = value
        elif inner in _PRINCIPAL_FIELDS:
            found[_PRINCIPAL_FIELDS[inner]] = value
        path.pop()
        text.clear()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(xml.encode("utf-8", "replace"), True)
    except expat.ExpatError as error:
        raise TaskXmlError(f"task XML: {error}") from error
    if actions:
        found["command"] = actions[0].get("command")
        if "arguments" in actions[0]:
            found["arguments"] = actions[0]["arguments"]
        if len(actions) > 1:
            found["exec"] = actions
    return found
