"""The ``cdc-sio`` command: parse arguments, call the documented functions, map errors to exit codes."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import asyncpg

from cdc_sio import __version__, capture, daemon, logs, migrate, status, tail
from cdc_sio.config import Config, load_config
from cdc_sio.errors import CdcSioError, ConfigError
from cdc_sio.systemd import Notifier

EX_CONFIG = 78  # sysexits.h: systemd's RestartPreventExitStatus=78 stops a restart loop
EX_UNAVAILABLE = 69

log = logs.get("cdc_sio")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(os.environ.get("CDC_SIO_LOG_LEVEL", "INFO"), sys.stderr, os.environ.get("CDC_SIO_LOG_FORMAT"))
    try:
        config = load_config(args.config, os.environ)
        command: Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]] = args.command
        return asyncio.run(command(config, args))
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
    return parser


async def _migrate(config: Config, args: argparse.Namespace) -> int:
    connection = await capture.connect(config.postgres.dsn, "migrate")
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
    return 0


async def _status(config: Config, args: argparse.Namespace) -> int:
    connection = await capture.connect(config.postgres.dsn, "status")
    try:
        print((await status.read_status(connection, config)).render())
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
    await tail.tail(config.redis.url, config.socketio.key, sys.stdout, _stop_on_signals())
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
