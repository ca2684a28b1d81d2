"""The characters no output may carry raw, and how each sink writes them instead.

Names come from attackers: a raw escape character or C1 control (U+009B is a one-byte CSI) in a
file that a responder ``cat``s can drive the terminal; a carriage return splits a CSV row in
some readers and starts a new, undefused cell; a direction override (U+202E) or isolate
(U+2066-2069) shows ``exe.txt`` as ``txt.exe``. U+2028/2029 end a line in JavaScript.
"""

from __future__ import annotations

import re
from typing import Final

# Direction marks, embeddings, overrides and isolates; line and paragraph separators.
_UNICODE_CONTROLS: Final = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
# What JSON text may hold raw but a terminal must not get: DEL, C1, the Unicode controls
# (JSON encoders escape U+0000-001F themselves).
JSON_UNSAFE: Final = re.compile(f"[\x7f-\x9f{_UNICODE_CONTROLS}]")
# A CSV cell: every control except tab and line feed (a quoted cell may span lines).
CSV_UNSAFE: Final = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_UNICODE_CONTROLS}]")


def json_escape(text: str) -> str:
    """JSON text with the unsafe characters as ``\\uXXXX`` escapes: the same value to a JSON
    reader (they only occur inside strings), inert on a terminal."""
    return JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def visible_escape(text: str, unsafe: re.Pattern[str] = CSV_UNSAFE) -> str:
    """The unsafe characters shown as ``\\x1b`` or ``\\u202e``."""
    return unsafe.sub(_visible, text)


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
