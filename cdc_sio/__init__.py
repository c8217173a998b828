"""cdc-sio: committed PostgreSQL row changes, published as Socket.IO events through Redis."""

__version__ = "0.1.0"
