"""A python-socketio AsyncClient, driven like node/client.js (same arguments, same output lines)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import sys
from typing import Any

import socketio


def _json_safe(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return {"$binary": base64.b64encode(value).decode()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return value


def _print(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--nsp", default="/")
    parser.add_argument("--rooms", default="")
    args = parser.parse_args()
    rooms = [room for room in args.rooms.split(",") if room]

    sio = socketio.AsyncClient(reconnection=False)
    done = asyncio.Event()

    async def on_any(event: str, *event_args: Any) -> None:
        _print({"event": event, "args": _json_safe(list(event_args))})

    async def on_disconnect(reason: str) -> None:
        _print({"disconnected": reason})

    sio.on("*", on_any, namespace=args.nsp)
    sio.on("disconnect", on_disconnect, namespace=args.nsp)
    await sio.connect(args.url, namespaces=[args.nsp], transports=["websocket"])
    await sio.call("join", rooms, namespace=args.nsp, timeout=10)
    _print({"joined": True, "id": sio.get_sid(args.nsp)})

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    reader = asyncio.StreamReader()  # the end of stdin means stop, as for the Node client
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stdin_closed = asyncio.ensure_future(reader.read())
    stdin_closed.add_done_callback(lambda _: done.set())
    await done.wait()
    stdin_closed.cancel()
    await sio.disconnect()


if __name__ == "__main__":
    asyncio.run(main())
