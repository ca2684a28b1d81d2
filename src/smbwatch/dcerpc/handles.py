"""What a context handle stands for (a service name, a registry key path), per pipe.

Calls such as StartServiceW or BaseRegSetValue name their target only by a 20-byte handle that
an earlier OpenServiceW or BaseRegOpenKey returned; remembering what each handle was opened on
lets those calls carry the name. Bounded: the oldest handles are forgotten first.
"""

from __future__ import annotations

from typing import Final

MAX_HANDLES: Final = 4096


class HandleNames:
    """A bounded map from context handle bytes to the name it was opened on."""

    __slots__ = ("_names",)

    def __init__(self) -> None:
        self._names: dict[bytes, str] = {}

    def get(self, handle: bytes) -> str | None:
        """The name ``handle`` was opened on, if this pipe saw it opened."""
        return self._names.get(handle)

    def put(self, handle: bytes, name: str) -> None:
        """Remember ``handle`` as ``name`` (a NULL handle, all zero, is never stored)."""
        if not any(handle):
            return
        self._names.pop(handle, None)
        if len(self._names) >= MAX_HANDLES:
            del self._names[next(iter(self._names))]
        self._names[handle] = name

    def close(self, handle: bytes) -> None:
        """Forget ``handle`` (CloseServiceHandle, BaseRegCloseKey)."""
        self._names.pop(handle, None)

    def __len__(self) -> int:
        return len(self._names)
