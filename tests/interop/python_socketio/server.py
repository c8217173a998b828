"""A python-socketio AsyncServer with AsyncRedisManager, driven like node/server.js (same arguments, same output)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any

import redis.asyncio as redis
import socketio
from aiohttp import web

READY_TIMEOUT = 10.0


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--key", default="socketio", help="the manager's channel")
    parser.add_argument("--namespaces", default="/")
    args = parser.parse_args()
    namespaces = [name for name in args.namespaces.split(",") if name]

    # The manager's connections carry this name, so CLIENT LIST shows when its SUBSCRIBE is done.
    name = f"pysio-{args.key}-{os.getpid()}"
    manager = socketio.AsyncRedisManager(args.redis_url, channel=args.key, redis_options={"client_name": name})
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager, namespaces=namespaces)
    for namespace in namespaces:
        sio.on("join", _joiner(sio, namespace), namespace=namespace)

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    listener = socket.socket()
    listener.bind(("127.0.0.1", args.port))
    await web.SockSite(runner, listener).start()

    # The manager subscribes when the first client connects; start it now so that it hears
    # everything published once this server says it is ready.
    sio.manager_initialized = True
    manager.initialize()
    await _subscribed(args.redis_url, name)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(json.dumps({"ready": True, "port": listener.getsockname()[1]}), flush=True)
    await stop.wait()
    await sio.shutdown()
    await runner.cleanup()


def _joiner(sio: socketio.AsyncServer, namespace: str) -> Any:
    async def join(sid: str, rooms: list[str]) -> bool:
        for room in rooms:
            await sio.enter_room(sid, room, namespace=namespace)
        return True  # the acknowledgement

    return join


async def _subscribed(url: str, name: str) -> None:
    """Poll CLIENT LIST: the manager's subscription is done by a task of python-socketio's that signals nothing."""
    client = redis.Redis.from_url(url)
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            while True:
                if any(c["name"] == name and c["cmd"] == "subscribe" for c in await client.client_list()):
                    return
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        raise
