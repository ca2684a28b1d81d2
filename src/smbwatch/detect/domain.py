"""What the inputs tell of the domain: which hosts are domain controllers, and their names.

Replication (drsuapi), the secure channel (netlogon) and service control between domain
controllers are normal; the same calls from a workstation are DCSync or worse. No directory is
at hand, so the controllers are learnt from the data itself: a host that answers netlogon or
drsuapi calls is one, and so is a host whose log records computer account changes (4742, logged
by the controller that made them). Their names come from the UNC names clients used to reach
them (tree connects) and the computer names their own logs carry. A machine account
``NAME$`` whose ``NAME`` is a controller's is that controller's own account.
"""

from __future__ import annotations

import ipaddress
from typing import Final

from smbwatch.events import SmbEvent

DC_INTERFACES: Final = frozenset(("netlogon", "drsuapi"))
DC_EVENT_CODES: Final = frozenset((4742,))
# The kinds of events (source, action) that can tell of a domain controller.
OBSERVED: Final = frozenset(
    {("network", "rpc_call"), ("network", "tree_connect"), ("host", "account_change")}
)
MAX_HOSTS: Final = 65536  # addresses and names remembered: bounded whatever the input


class DomainControllers:
    """Learns controllers from events (``observe``), then answers ``is_controller``."""

    def __init__(self) -> None:
        self._addresses: set[str] = set()
        self._names: set[str] = set()
        self._server_names: dict[str, set[str]] = {}  # address → names clients used for it
        self._known: set[str] | None = None  # names(), until something new is observed

    def observe(self, event: SmbEvent) -> None:
        """Called for the events of the ``OBSERVED`` kinds."""
        action = event.action
        if action == "rpc_call":
            if event.rpc_interface in DC_INTERFACES and event.rpc_opnum is not None:
                if event.dst_ip is not None and len(self._addresses) < MAX_HOSTS:
                    self._addresses.add(event.dst_ip)
                    self._known = None
                self._add_name(event.server)
        elif action == "tree_connect" and event.source == "network":
            if event.dst_ip and event.server and len(self._server_names) < MAX_HOSTS:
                self._server_names.setdefault(event.dst_ip, set()).add(_label(event.server))
                self._known = None
        elif event.source == "host" and event.event_code in DC_EVENT_CODES:
            self._add_name(event.server)

    def is_controller(self, address: str | None, user: str | None) -> bool:
        """Whether a client (its address, or the account it used) is a domain controller."""
        if address is not None and address in self._addresses:
            return True
        if user is None or not user.endswith("$"):
            return False
        return _label(user[:-1]) in self.names()

    def names(self) -> set[str]:
        """The controllers' host names (first label, upper case)."""
        if self._known is None:
            self._known = set(self._names)
            for address in self._addresses:
                self._known |= self._server_names.get(address, set())
        return self._known

    def _add_name(self, server: str | None) -> None:
        if server and len(self._names) < MAX_HOSTS:
            self._names.add(_label(server))
            self._known = None


def is_local(src_ip: str | None, dst_ip: str | None) -> bool:
    """A client that is the server itself: a loopback address, or one address at both ends."""
    if src_ip is None:
        return False
    if src_ip == dst_ip:
        return True
    try:
        return ipaddress.ip_address(src_ip).is_loopback
    except ValueError:
        return False


def _label(name: str) -> str:
    """``MORDORDC`` from ``MORDORDC.theshire.local``, ``\\\\mordordc`` or ``mordordc``."""
    return name.lstrip("\\").split(".", 1)[0].upper()
