"""The ``cdc-sio`` command: parse arguments, call the documented functions, map errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from cdc_sio import __version__, alembic_revision, daemon, deadletters, logs, migrate, pg, status, tail
from cdc_sio.catalog import capture_triggers
from cdc_sio.config import Config, load_config
from cdc_sio.errors import CdcSioError, ConfigError
from cdc_sio.systemd import Notifier
from cdc_sio.targets import RedisAdapter

EX_CONFIG = 78  # sysexits.h: systemd's RestartPreventExitStatus=78 stops a restart loop
EX_UNAVAILABLE = 69

log = logs.get("cdc_sio")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(os.environ.get("CDC_SIO_LOG_LEVEL", "INFO"), sys.stderr, os.environ.get("CDC_SIO_LOG_FORMAT"))
    try:
        config = load_config(args.config, os.environ)
        command: Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]] = args.command
        try:
            return asyncio.run(command(config, args))
        except socket.gaierror as error:
            key = "redis.url" if command is _tail else "postgres.dsn"
            raise ConfigError(f"{config.source}: {key}: the host does not resolve ({error.strerror})") from None
    except ConfigError as error:
        _fail(f"configuration error: {error}")
        return EX_CONFIG
    except CdcSioError as error:
        _fail(str(error))
        return 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        _fail(f"cannot reach a service: {type(error).__name__}: {error}")
        return EX_UNAVAILABLE


def _fail(message: str) -> None:
    print(logs.redact(f"cdc-sio: {message}"), file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdc-sio", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cdc-sio {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(
        name: str, handler: Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]], text: str
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument("--config", "-c", required=True, help="the TOML configuration file")
        sub.set_defaults(command=handler)
        return sub

    migrate_parser = command("migrate", _migrate, "install or update cdc-sio's schema and capture triggers")
    migrate_parser.add_argument("--sql", action="store_true", help="print the SQL instead of running it")
    migrate_parser.add_argument("--uninstall", action="store_true", help="remove every trigger and the schema")
    run_parser = command("run", _run, "run the daemon: publish committed changes as Socket.IO events")
    run_parser.add_argument("--once", action="store_true", help="publish everything waiting, then exit")
    command("check", _check, "check the configuration against the live database")
    command("status", _status, "show migrations, triggers, and the changes waiting")
    command("tail", _tail, "print every Socket.IO broadcast in Redis, decoded")
    revision = command("alembic-revision", _alembic_revision, "write cdc-sio's install as an Alembic revision")
    revision.add_argument("--directory", required=True, type=Path, help="the Alembic versions directory")
    revision.add_argument("--message", "-m", default="install cdc-sio capture", help="the revision's message")
    revision.add_argument("--down-revision", help="the revision it follows (default: the directory's head)")
    dead = command("dead-letters", _dead_letters, "list the changes that could not be published")
    dead.add_argument("--retry", action="store_true", help="queue them again (after fixing the config)")
    dead.add_argument("ids", nargs="*", type=int, metavar="CHANGE_ID", help="only these (default: all)")
    return parser


async def _migrate(config: Config, args: argparse.Namespace) -> int:
    connection = await pg.connect(config.postgres.dsn, "migrate")
    try:
        if args.uninstall:
            steps = await migrate.uninstall(connection, dry_run=args.sql)
        else:
            steps = await migrate.migrate(connection, config, dry_run=args.sql)
    finally:
        await connection.close()
    if args.sql:
        print(migrate.render_steps(steps), end="")
    else:
        for step in steps:
            print(f"cdc-sio: {step.description}")
        if not steps:
            print("cdc-sio: nothing to do, the database matches the configuration")
    return 0


async def _check(config: Config, args: argparse.Namespace) -> int:
    await migrate.validate(config)
    print(f"cdc-sio: {config.source} fits the database ({len(config.tables)} tables)")
    connection = await pg.connect(config.postgres.dsn, "check")
    try:
        installed = await connection.fetchval("SELECT to_regclass('cdc_sio.watched_tables') IS NOT NULL")
        states = await status.capture_states(connection, config) if installed else {}
    finally:
        await connection.close()
    drift = {table: state for table, state in states.items() if state not in (status.UP_TO_DATE, status.NOT_INSTALLED)}
    for table, state in sorted(drift.items()):
        print(f"cdc-sio: drift: {table}: {state}", file=sys.stderr)
    return 1 if drift else 0


async def _status(config: Config, args: argparse.Namespace) -> int:
    connection = await pg.connect(config.postgres.dsn, "status")
    try:
        print((await status.read_status(connection, config)).render())
    finally:
        await connection.close()
    return 0


async def _alembic_revision(config: Config, args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        raise ConfigError(f"--directory {args.directory}: not a directory")
    try:
        down_revision = args.down_revision or alembic_revision.head_revision(args.directory)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    configured = capture_triggers(config, await migrate.validate(config))
    path = alembic_revision.write_revision(
        args.directory,
        migrate.install_steps(configured),
        migrate.removal_steps(config),
        message=args.message,
        down_revision=down_revision,
        source=config.source,
        version=__version__,
    )
    print(f"cdc-sio: wrote {path}")
    return 0


async def _dead_letters(config: Config, args: argparse.Namespace) -> int:
    connection = await pg.connect(config.postgres.dsn, "dead-letters")
    try:
        if args.retry:
            count = await deadletters.retry_dead_letters(connection, args.ids or None)
            print(f"cdc-sio: {count} changes queued again")
        else:
            print("change_id\ttable\top\tfailed_at\treason")
            for line in await deadletters.list_dead_letters(connection):
                print(line)
    finally:
        await connection.close()
    return 0


async def _run(config: Config, args: argparse.Namespace) -> int:
    notifier = Notifier.from_environ(os.environ)
    service = daemon.Daemon(config, notifier=notifier, load_config=lambda: load_config(args.config, os.environ))
    reloads: set[asyncio.Task[bool]] = set()

    def on_hangup() -> None:
        log.info("signal_received", signal="SIGHUP", action="reload the configuration")
        task = asyncio.create_task(service.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        await service.run(_stop_on_signals(), once=args.once)
    finally:
        notifier.close()
    return 0


async def _tail(config: Config, args: argparse.Namespace) -> int:
    classic = [(t.redis.url, t.target.key) for t in config.socketio.targets if isinstance(t.target, RedisAdapter)]
    if not classic:
        raise ConfigError(f"{config.source}: socketio: cdc-sio tail reads the channels of adapter 'redis' only")
    url, key = classic[0]
    await tail.tail(url, key, sys.stdout, _stop_on_signals())
    return 0


def _stop_on_signals() -> asyncio.Event:
    """The first SIGTERM/SIGINT asks for a clean stop; a second one exits at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("signal_received", signal=name, action="exit now")
            os._exit(128 + signum)
        log.info("signal_received", signal=name, action="stop after the batch in flight")
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    return stop
