"""Every error cdc-sio raises on purpose.

CdcSioError
├── ConfigError              the configuration file is wrong, or does not fit the database (exit 78)
└── EncodingError            an event cannot be put on the wire (bad event name, unencodable value)
    └── UnsupportedOperation the target's servers have no way to do what was asked
"""


class CdcSioError(Exception):
    """Base class of cdc-sio's own errors."""


class ConfigError(CdcSioError):
    """The configuration is invalid; nothing was changed."""


class EncodingError(CdcSioError):
    """An event cannot be encoded for Socket.IO."""


class UnsupportedOperation(EncodingError):
    """The target cannot carry this operation (e.g. serverSideEmit to python-socketio)."""
