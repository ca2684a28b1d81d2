"""smbwatch: SMB lateral movement from packet captures and Windows event logs."""

__version__ = "0.1.0"
