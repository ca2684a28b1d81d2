"""Counted warnings: hostile or damaged input costs one packet or record, never the run.

Every stage reports what it had to drop here instead of raising; the CLI prints the summary to
stderr at the end, so a responder knows how much of the input was not understood. An input that
cannot be used at all is an ``InputError`` instead, whichever layer finds it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Final

_EXAMPLES_PER_KIND: Final = 3


class InputError(Exception):
    """An input the user named cannot be used (missing, unreadable, unknown format)."""


@dataclass
class Diagnostics:
    """Warning counts by kind, with the first few messages of each kind kept as examples."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    damaged_inputs: list[str] = field(default_factory=list)

    def warn(self, kind: str, message: str = "") -> None:
        """Count one warning of ``kind``; keep its message if it is among the first few."""
        self.counts[kind] += 1
        if message:
            kept = self.examples.setdefault(kind, [])
            if len(kept) < _EXAMPLES_PER_KIND:
                kept.append(message)

    def damaged(self, source: str, message: str) -> None:
        """An input file that could not be read to its end (truncated, corrupt structure)."""
        self.damaged_inputs.append(source)
        self.warn("input_damaged", f"{source}: {message}")

    def merge(self, other: Diagnostics) -> None:
        """Fold the diagnostics of another worker (one input file) into these."""
        self.counts.update(other.counts)
        for kind, messages in other.examples.items():
            kept = self.examples.setdefault(kind, [])
            kept.extend(messages[: _EXAMPLES_PER_KIND - len(kept)])
        self.damaged_inputs.extend(other.damaged_inputs)

    def summary_lines(self) -> list[str]:
        """One line per warning kind, most frequent first, with its first example."""
        lines = []
        for kind, count in self.counts.most_common():
            example = self.examples.get(kind)
            suffix = f" (e.g. {example[0]})" if example else ""
            lines.append(f"warning: {count} x {kind}{suffix}")
        return lines
