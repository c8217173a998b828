"""Versioned SQL migrations of cdc-sio's own schema, shipped inside the package as cdc_sio.migrations."""
