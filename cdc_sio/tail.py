"""``cdc-sio tail``: print every Socket.IO broadcast that passes through Redis, decoded."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any, TextIO

import redis.asyncio as redis

from cdc_sio.encoding import decode_classic


async def tail(url: str, key: str, out: TextIO, stop: asyncio.Event) -> None:
    client = redis.Redis.from_url(url, client_name="cdc-sio:tail")
    try:
        async with client.pubsub() as pubsub:
            await pubsub.psubscribe(f"{key}#*")
            print(f"# listening on {key}#* (Ctrl-C to stop)", file=out, flush=True)
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is None:
                    continue
                print(describe(message["channel"], message["data"]), file=out, flush=True)
    finally:
        await client.aclose()


def describe(channel: bytes, payload: bytes) -> str:
    try:
        emission = decode_classic(payload)
    except (ValueError, TypeError, KeyError) as error:
        return json.dumps({"channel": channel.decode(errors="replace"), "undecodable": str(error)})
    return json.dumps(
        {
            "namespace": emission.namespace,
            "rooms": list(emission.rooms),
            "event": emission.event,
            "args": list(emission.args),
        },
        default=_json_default,
        ensure_ascii=False,
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$binary": base64.b64encode(value).decode()}
    raise TypeError(f"cannot show {type(value).__name__}")
