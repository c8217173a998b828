"""The tiny HTTP server's request handling (pure: request bytes in, response out)."""

from __future__ import annotations

from cdc_sio.httpd import Response, Routes, respond

ROUTES: Routes = {"/healthz": lambda: Response(200, "application/json", b"{}")}


def test_get_and_head_of_a_known_path() -> None:
    """GET answers the route; HEAD the same status with no body; a query string is ignored."""
    assert respond(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", ROUTES) == Response(200, "application/json", b"{}")
    assert respond(b"HEAD /healthz?x=1 HTTP/1.1\r\n\r\n", ROUTES) == Response(200, "application/json", b"")


def test_unknown_paths_other_methods_and_garbage() -> None:
    """404 for an unknown path, 405 for anything but GET/HEAD, 400 for a request line that is not one."""
    assert respond(b"GET /nope HTTP/1.1\r\n\r\n", ROUTES).status == 404
    assert respond(b"POST /healthz HTTP/1.1\r\n\r\n", ROUTES).status == 405
    assert respond(b"\x16\x03\x01 garbage\r\n\r\n", ROUTES).status == 400
