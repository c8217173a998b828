"""Fixtures on the real services; see tests/support.py."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support import Subscriber, new_database


@pytest.fixture(autouse=True)
async def fail_on_unhandled_loop_errors() -> AsyncIterator[None]:
    """Fail the test if an exception reached the event loop unhandled (a forgotten task)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    loop.set_exception_handler(previous)
    assert not errors, f"unhandled errors in the event loop: {errors}"


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    async with new_database() as database:
        yield database


@pytest.fixture
def key() -> str:
    """A Socket.IO adapter key of this test's own, so tests never see each other's messages."""
    return f"cdc-sio-test-{secrets.token_hex(4)}"


@pytest.fixture
async def subscriber(key: str) -> AsyncIterator[Subscriber]:
    sub = Subscriber(key)
    await sub.start()
    yield sub
    await sub.close()
