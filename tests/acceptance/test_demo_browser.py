"""The talk's demo (demo/run.sh) works in a real browser: headless Debian chromium, driven by playwright-core."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis

from tests.support import (
    ADMIN_DSN,
    REDIS_URL,
    Subscriber,
    classic_channel,
    classic_message,
    database_dsn,
    forget_fencing_key,
    free_port,
    row_of,
)

ROOT = Path(__file__).parents[2]
DRIVER_DIR = Path(__file__).parent / "browser"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "artifacts" / "demo-browser.png"
START_TIMEOUT = 90.0  # run.sh installs cdc-sio and the npm packages first
ROW = "#things tbody tr"


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    database: str
    key: str
    output: list[str]

    @property
    def dsn(self) -> str:
        return database_dsn(self.database)

    def url(self, name: str) -> str:
        """The URL that run.sh printed for *name* ("live page", "legacy app")."""
        found = re.search(rf"^\s+{name}:\s+(\S+)$", "\n".join(self.output), re.MULTILINE)
        assert found, f"run.sh printed no {name} URL"
        return found.group(1)

    def processes(self) -> list[int]:
        """Every process that demo/run.sh started and that is still running (its environment names our database)."""
        marker = f"DEMO_DB={self.database}".encode()
        found = []
        for environ in Path("/proc").glob("[0-9]*/environ"):
            with contextlib.suppress(OSError):
                if marker in environ.read_bytes().split(b"\0"):
                    found.append(int(environ.parent.name))
        return found

    async def interrupt(self) -> int:
        """Ctrl-C in the terminal: SIGINT to the script's process group; its exit code."""
        if self.process.returncode is None:
            os.killpg(self.process.pid, signal.SIGINT)
            await asyncio.wait_for(self.process.wait(), 30)
        return self.process.returncode or 0


async def read_lines(stream: asyncio.StreamReader, into: list[str], ready: asyncio.Future[None]) -> None:
    async for raw in stream:
        into.append(raw.decode().rstrip())
        if "legacy app:" in into[-1] and not ready.done():
            ready.set_result(None)
    if not ready.done():
        ready.set_exception(AssertionError("demo/run.sh exited before printing its URLs:\n" + "\n".join(into)))


def _sigint_as_in_a_terminal() -> None:
    """A test run started in the background (``nohup``, ``&`` in a script) passes SIGINT on ignored, and
    bash cannot trap a signal that was ignored when it started: Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
async def demo(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    """demo/run.sh on free ports, with a database and an adapter key of its own; stopped and dropped afterwards."""
    database = f"cdc_sio_demo_test_{secrets.token_hex(4)}"
    key = f"cdc-sio-test-{secrets.token_hex(4)}"
    environment = {
        **os.environ,
        "DEMO_PG": ADMIN_DSN.rpartition("/")[0],
        "DEMO_DB": database,
        "DEMO_REDIS_URL": REDIS_URL,
        "DEMO_SOCKETIO_KEY": key,
        "DEMO_APP_PORT": str(free_port()),
        "DEMO_SOCKETIO_PORT": str(free_port()),
        "DEMO_LOG_DIR": str(tmp_path_factory.mktemp("demo-logs")),
    }
    process = await asyncio.create_subprocess_exec(
        "bash",
        str(ROOT / "demo/run.sh"),
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=_sigint_as_in_a_terminal,
    )
    assert process.stdout is not None
    demo = Demo(process, database, key, [])
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    reader = asyncio.create_task(read_lines(process.stdout, demo.output, ready))
    try:
        await asyncio.wait_for(ready, START_TIMEOUT)
        yield demo
    finally:
        await demo.interrupt()
        await reader
        await forget_fencing_key(database_dsn(database))
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


def require_chromium() -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"


class Browser:
    """tests/acceptance/browser/driver.js: one JSON command a line on its stdin, one answer a line on its stdout."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.last_id = 0

    @classmethod
    async def launch(cls) -> Browser:
        require_chromium()
        process = await asyncio.create_subprocess_exec(
            "node", "driver.js", cwd=DRIVER_DIR, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        browser = cls(process)
        assert "ready" in await browser.read(60), "the browser driver did not start"
        return browser

    async def read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.process.stdout.readline()
        assert line, f"the browser driver exited with code {await self.process.wait()}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def call(self, op: str, page: str = "live", timeout: float = 10.0, **args: Any) -> Any:
        """Run *op* on the tab named *page*; waits give up after *timeout* seconds."""
        assert self.process.stdin is not None
        self.last_id += 1
        command = {"id": self.last_id, "op": op, "page": page, "timeout": timeout * 1000, **args}
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        answer = await self.read(timeout + 10)
        assert answer["id"] == self.last_id, answer
        assert answer["ok"], f"{op} {args} on the {page} page: {answer['error']}"
        return answer["value"]

    async def wait_for(self, selector: str, has_text: str = "", state: str = "visible", page: str = "live") -> None:
        await self.call("waitFor", page=page, selector=selector, hasText=has_text, state=state)

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


@pytest.fixture(scope="module")
async def chromium(demo: Demo) -> AsyncIterator[Browser]:
    """A browser with the live page open, connected, listing the Things."""
    browser = await Browser.launch()
    try:
        await browser.call("goto", url=demo.url("live page"))
        await browser.wait_for("#connection[data-state=live]")
        await browser.wait_for(ROW, "Make more moneys")
        yield browser
    finally:
        await browser.close()


@pytest.fixture
async def browser(chromium: Browser) -> AsyncIterator[Browser]:
    """The browser, for one test that fails if its pages threw an error or logged one to the console."""
    yield chromium
    assert await chromium.call("errors") == []


async def psql(demo: Demo, sql: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "psql", demo.dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, errors.decode()


async def test_a_change_made_with_psql_appears_on_the_page(demo: Demo, browser: Browser) -> None:
    """Rows inserted, updated and deleted with psql, behind the app's back, change the live list."""
    await psql(demo, "UPDATE things SET name = 'Renamed in psql', importance = 7 WHERE name = 'Order more coffee'")
    await browser.wait_for(ROW, "Renamed in psql")
    assert await browser.call("text", selector=f"{ROW}:has-text('Renamed in psql') .importance") == "7"
    assert await browser.call("count", selector=ROW, hasText="Order more coffee") == 0

    await psql(demo, "INSERT INTO things (name, importance) VALUES ('Inserted with psql', 3)")
    await browser.wait_for(ROW, "Inserted with psql")
    await psql(demo, "DELETE FROM things WHERE name = 'Inserted with psql'")
    await browser.wait_for(ROW, "Inserted with psql", state="detached")


async def test_a_thing_created_in_the_legacy_app_appears_on_the_live_page(demo: Demo, browser: Browser) -> None:
    """The app's own form (a plain POST and redirect, no Socket.IO) updates the live page in another tab."""
    await browser.call("goto", page="app", url=demo.url("legacy app"))
    await browser.call("fill", page="app", selector="#create [name=name]", value="Created in the app")
    await browser.call("fill", page="app", selector="#create [name=importance]", value="42")
    await browser.call("click", page="app", selector="#create button")
    await browser.wait_for("input[value='Created in the app']", page="app")
    await browser.wait_for(ROW, "Created in the app")


async def test_the_page_drops_an_event_delivered_twice(demo: Demo, browser: Browser) -> None:
    """An older change published again (at-least-once delivery) does not undo a newer one: meta.id decides."""
    subscriber = Subscriber(demo.key)
    await subscriber.start()
    try:
        await psql(demo, "UPDATE things SET name = 'First version' WHERE name = 'Water the office plants'")
        [*_, first] = await subscriber.until(lambda emission: row_of(emission).get("name") == "First version")
    finally:
        await subscriber.close()
    await psql(demo, "UPDATE things SET name = 'Second version' WHERE name = 'First version'")
    await browser.wait_for(ROW, "Second version")

    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert await client.publish(classic_channel(demo.key, first), classic_message(first)) == 1
    finally:
        await client.aclose()
    await psql(demo, "INSERT INTO things (name) VALUES ('After the duplicate')")
    await browser.wait_for(ROW, "After the duplicate")
    assert await browser.call("count", selector=ROW, hasText="Second version") == 1
    assert await browser.call("count", selector=ROW, hasText="First version") == 0


async def test_the_modal_shows_an_important_delete_only_while_alerts_are_on(demo: Demo, browser: Browser) -> None:
    """Get Alerts joins ROOM::ExtraImportantUpdates, so deleting a Thing with importance > 100 opens the
    modal; after Stop Alerts such a delete only leaves the list, and no modal opens."""
    await browser.call("click", selector="#alert-toggle")
    await browser.wait_for("#alert-toggle", "Stop Alerts")
    await psql(demo, "DELETE FROM things WHERE name = 'Renew the TLS certificate'")
    await browser.wait_for("#modal")
    assert await browser.call("text", selector="#modal-important-record") == "Renew the TLS certificate"
    assert await browser.call("text", selector="#modal-importance") == "150"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    await browser.call("screenshot", path=str(SCREENSHOT))
    await browser.call("click", selector="#modal-close")
    await browser.wait_for("#modal", state="hidden")

    await browser.call("click", selector="#alert-toggle")
    await browser.wait_for("#alert-toggle", "Get Alerts")
    await psql(demo, "DELETE FROM things WHERE name = 'Make more moneys'")
    await psql(demo, "INSERT INTO things (name) VALUES ('Published after the delete')")
    await browser.wait_for(ROW, "Published after the delete")
    assert await browser.call("count", selector=ROW, hasText="Make more moneys") == 0
    assert not await browser.call("isVisible", selector="#modal")


async def test_ctrl_c_stops_every_process_of_the_demo(demo: Demo) -> None:
    """Ctrl-C (SIGINT to the script's process group) stops the Socket.IO server, the daemon and the app too."""
    assert len(demo.processes()) >= 4, demo.processes()
    assert await demo.interrupt() == 130, "\n".join(demo.output)
    assert demo.processes() == []
