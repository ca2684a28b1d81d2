"""What is known of one TCP connection before any SMB byte is decoded."""

from __future__ import annotations

from smbwatch.capture.tcp import connection_id
from smbwatch.events import SmbEvent


class Endpoints:
    """Client (src) and server (dst) of a connection, and where the bytes came from."""

    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    source_format: str  # pcap, pcapng, live
    source_file: str

    def __init__(
        self,
        src_ip: str,
        src_port: int,
        dst_ip: str,
        dst_port: int,
        source_format: str,
        source_file: str,
        conn_id: str | None = None,
    ) -> None:
        self.src_ip = src_ip
        self.src_port = src_port
        self.dst_ip = dst_ip
        self.dst_port = dst_port
        self.source_format = source_format
        self.source_file = source_file
        self._conn_id = conn_id
        self._client_isn: int | None = None
        self._unnamed = False  # the id is to be worked out (``of_connection``)

    @classmethod
    def of_connection(
        cls,
        client: str,
        client_port: int,
        server: str,
        server_port: int,
        source_format: str,
        source_file: str,
        client_isn: int | None,
    ) -> Endpoints:
        """The endpoints of a TCP connection, its ``conn_id`` worked out at its first event: a
        connection that makes none (a scan's: a SYN and a reset) costs no digest."""
        endpoints = cls(client, client_port, server, server_port, source_format, source_file)
        endpoints._client_isn = client_isn
        endpoints._unnamed = True
        return endpoints

    @property
    def conn_id(self) -> str | None:
        """``capture.tcp.connection_id`` (None for endpoints not of a connection)."""
        if self._unnamed:
            self._unnamed = False
            self._conn_id = connection_id(
                self.src_ip, self.src_port, self.dst_ip, self.dst_port, self._client_isn
            )
        return self._conn_id

    def event(self, action: str, time: int, frame: int | None) -> SmbEvent:
        """A network event on this connection: endpoints and where it was read filled in (the
        caller sets the rest, field by field: no keywords to pack and look up by name)."""
        event = SmbEvent(time, "network", action)
        event.source_format, event.source_file = self.source_format, self.source_file
        event.source_ref = frame
        event.src_ip, event.src_port = self.src_ip, self.src_port
        event.dst_ip, event.dst_port = self.dst_ip, self.dst_port
        event.conn_id = self.conn_id
        return event
