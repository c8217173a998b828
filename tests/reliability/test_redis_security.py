"""Redis with a password, TLS with a CA file, and an ACL user that may only publish cdc-sio's events."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import redis.asyncio

from tests.servers import RedisServer
from tests.support import THINGS_DDL, free_port, new_database

EX_CONFIG = 78
SECRET = "s3cret-never-logged"
# The least a daemon needs on Redis (documented in docs/deployment.md): PING and naming its
# connection, the fencing script (EVALSHA, falling back to EVAL), the fence key, and PUBLISH on
# its own channels.
ACL_RULES = [
    "on", f">{SECRET}", "resetkeys", "~cdc-sio:leader:*", "resetchannels", "&cdc-sio-acl#*",
    "-@all", "+ping", "+client|setname", "+evalsha", "+eval", "+script|load", "+get", "+set", "+publish",
]  # fmt: skip


def config_text(dsn: str, url: str, key: str) -> str:
    return (
        f'[postgres]\ndsn = "{dsn}"\n[redis]\nurl = "{url}"\n[socketio]\nkey = "{key}"\n'
        '[[tables]]\ntable = "things"\n[tables.events]\ninsert = "c"\n'
    )


async def run_once(tmp: Path, text: str) -> tuple[int, str]:
    (tmp / "c.toml").write_text(text)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdc_sio", "run", "--once", "--config", str(tmp / "c.toml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def prepare(dsn: str) -> None:
    from cdc_sio import migrate, pg
    from cdc_sio.config import parse_config

    config = parse_config(
        {"postgres": {"dsn": dsn}, "tables": [{"table": "things", "events": {"insert": "c"}}]}, "t.toml", {}
    )
    connection = await pg.connect(dsn, "test")
    try:
        await migrate.migrate(connection, config)
        await connection.execute("INSERT INTO things (id) VALUES (1)")
    finally:
        await connection.close()


async def published(server_url: str, key: str, action: object) -> list[bytes]:
    """Run *action* while subscribed to the key's channels; return what was published."""
    client = redis.asyncio.Redis.from_url(server_url)
    pubsub = client.pubsub()
    await pubsub.psubscribe(f"{key}#*")
    await pubsub.get_message(timeout=5)
    await action  # type: ignore[misc]
    messages = []
    while (message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)) is not None:
        messages.append(message["data"])
    await pubsub.aclose()
    await client.aclose()
    return messages


async def test_wrong_password_is_a_config_error_that_never_shows_the_password(tmp_path: Path) -> None:
    server = RedisServer("--requirepass", "the-right-one")
    await server.start()
    try:
        async with new_database(THINGS_DDL) as dsn:
            await prepare(dsn)
            code, out = await run_once(tmp_path, config_text(dsn, f"redis://:{SECRET}@127.0.0.1:{server.port}/0", "k"))
    finally:
        await server.stop()
    assert code == EX_CONFIG, out
    assert "redis.url: AuthenticationError" in out
    assert SECRET not in out


def make_certificates(directory: Path) -> tuple[Path, Path, Path, Path]:
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"
    )
    (directory / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
            "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other-ca",
            "-keyout", "other.key", "-out", "other.pem")  # fmt: skip
    return directory / "ca.pem", directory / "server.pem", directory / "server.key", directory / "other.pem"


async def test_tls_with_a_ca_file_publishes_and_a_wrong_ca_is_refused(tmp_path: Path) -> None:
    ca, cert, key_file, other_ca = make_certificates(tmp_path)
    tls_port = free_port()
    server = RedisServer(
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key_file),
        "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
    )  # fmt: skip
    await server.start()
    try:
        async with new_database(THINGS_DDL) as dsn:
            await prepare(dsn)
            wrong = config_text(dsn, f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={other_ca}", "tls")
            code, out = await run_once(tmp_path, wrong)
            assert code == EX_CONFIG, out
            assert "redis.url: SSLCertVerificationError" in out

            right = config_text(dsn, f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={ca}", "tls")
            runs: list[tuple[int, str]] = []

            async def run() -> None:
                runs.append(await run_once(tmp_path, right))

            messages = await published(server.url, "tls", run())
    finally:
        await server.stop()
    assert runs[0][0] == 0, runs[0][1]
    assert len(messages) == 1


async def test_an_acl_user_limited_to_publishing_its_channels_is_enough(tmp_path: Path) -> None:
    server = RedisServer()
    await server.start()
    admin = redis.asyncio.Redis.from_url(server.url)
    try:
        await admin.execute_command("ACL", "SETUSER", "cdc-sio", *ACL_RULES)
        async with new_database(THINGS_DDL) as dsn:
            await prepare(dsn)
            url = f"redis://cdc-sio:{SECRET}@127.0.0.1:{server.port}/0"
            runs: list[tuple[int, str]] = []

            async def run() -> None:
                runs.append(await run_once(tmp_path, config_text(dsn, url, "cdc-sio-acl")))

            messages = await published(server.url, "cdc-sio-acl", run())
            assert runs[0][0] == 0, runs[0][1]
            assert len(messages) == 1
            assert SECRET not in runs[0][1]

    finally:
        await admin.aclose()
        await server.stop()
