"""A tiny HTTP/1.1 server for ``/metrics`` and ``/healthz`` (GET only, one response per connection)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import NamedTuple

from cdc_sio import logs

log = logs.get("cdc_sio.httpd")

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class Response(NamedTuple):
    status: int
    content_type: str
    body: bytes


Routes = dict[str, Callable[[], Response]]


async def serve(host: str, port: int, routes: Routes) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                response = respond(await reader.readuntil(b"\r\n\r\n"), routes)
                head = (
                    f"HTTP/1.1 {response.status} {REASONS[response.status]}\r\n"
                    f"Content-Type: {response.content_type}\r\nContent-Length: {len(response.body)}\r\n"
                    "Connection: close\r\n\r\n"
                )
                writer.write(head.encode() + response.body)
                await writer.drain()
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, host, port, limit=16384)
    log.info("http_listening", address=f"{host}:{port}", paths=" ".join(routes))
    return server


def respond(request: bytes, routes: Routes) -> Response:
    method, _, rest = request.partition(b" ")
    target = rest.partition(b" ")[0].decode("latin-1").partition("?")[0]
    if not target.startswith("/"):
        return Response(400, "text/plain", b"bad request\n")
    if method not in (b"GET", b"HEAD"):
        return Response(405, "text/plain", b"only GET\n")
    route = routes.get(target)
    if route is None:
        return Response(404, "text/plain", b"not found\n")
    response = route()
    return response._replace(body=b"") if method == b"HEAD" else response
