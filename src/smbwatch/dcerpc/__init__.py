"""DCE/RPC on named pipes: PDUs, fragments, presentation contexts and decoded call arguments.

The SMB decoders make one ``RpcPipe`` per open pipe and feed it the pipe's bytes; it returns one
``RpcCall`` per completed call (interface, operation, arguments, status).
"""

from smbwatch.dcerpc.pipe import RpcCall, RpcPipe

__all__ = ["RpcCall", "RpcPipe"]
