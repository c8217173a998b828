"""The demo's "legacy" web application: Things in PostgreSQL, listed, created, edited and deleted.

It knows nothing about cdc-sio or Socket.IO: plain SQL, server-rendered HTML forms, post and redirect,
one database connection per request. /things.json is the same list for pages that load it with
JavaScript (the live page does, from another origin).

    python demo/app/things_app.py --dsn postgresql://postgres@127.0.0.1:5432/cdc_sio_demo --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import asyncpg

THING_PATH = re.compile(r"/things/(\d+)(/delete)?")


class InvalidThing(ValueError):
    """A form that does not describe a Thing; the message says why."""


def query(dsn: str, sql: str, *args: object) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(dsn)
        try:
            return [dict(record) for record in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    return asyncio.run(run())


def thing_from_form(form: dict[str, list[str]]) -> tuple[str, int]:
    name = form.get("name", [""])[0].strip()
    if not name:
        raise InvalidThing("a Thing needs a name")
    importance = form.get("importance", ["0"])[0].strip() or "0"
    try:
        return name, int(importance)
    except ValueError:
        raise InvalidThing(f"importance must be a whole number, not {importance!r}") from None


def render_page(things: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"""<tr>
  <td>{thing["id"]}</td>
  <td><form method="post" action="/things/{thing["id"]}" class="edit">
    <input name="name" value="{escape(thing["name"])}" aria-label="name" required>
    <input name="importance" type="number" value="{thing["importance"]}" aria-label="importance" required>
    <button>Save</button></form></td>
  <td><form method="post" action="/things/{thing["id"]}/delete"><button>Delete</button></form></td>
</tr>"""
        for thing in things
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Things</title><link rel="icon" href="data:,">
<style>
body {{ font: 15px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }}
input {{ font: inherit; padding: .2rem; }} input[type=number] {{ width: 6rem; }}
</style></head>
<body>
<h1>Things</h1>
<form method="post" action="/things" id="create">
  <input name="name" placeholder="name" aria-label="new name" required>
  <input name="importance" type="number" value="0" aria-label="new importance" required>
  <button>Create</button>
</form>
<table><tr><th>#</th><th>Name and importance</th><th></th></tr>{rows}</table>
</body></html>
"""


class ThingsHandler(BaseHTTPRequestHandler):
    dsn: str

    def do_GET(self) -> None:
        if self.path not in ("/", "/things.json"):
            self.respond(HTTPStatus.NOT_FOUND, "text/plain", "not found\n")
            return
        things = query(self.dsn, "SELECT id, name, importance FROM things ORDER BY id")
        if self.path == "/":
            self.respond(HTTPStatus.OK, "text/html", render_page(things))
        else:
            self.respond(HTTPStatus.OK, "application/json", json.dumps(things), {"Access-Control-Allow-Origin": "*"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        match = THING_PATH.fullmatch(self.path)
        try:
            if self.path == "/things":
                query(self.dsn, "INSERT INTO things (name, importance) VALUES ($1, $2)", *thing_from_form(form))
            elif match and match.group(2):
                query(self.dsn, "DELETE FROM things WHERE id = $1", int(match.group(1)))
            elif match:
                name, importance = thing_from_form(form)
                sql = "UPDATE things SET name = $2, importance = $3 WHERE id = $1"
                query(self.dsn, sql, int(match.group(1)), name, importance)
            else:
                self.respond(HTTPStatus.NOT_FOUND, "text/plain", "not found\n")
                return
        except (InvalidThing, asyncpg.DataError) as error:
            self.respond(HTTPStatus.BAD_REQUEST, "text/plain", f"{error}\n")
            return
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def respond(self, status: HTTPStatus, content_type: str, body: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def main() -> None:
    parser = argparse.ArgumentParser(description="The demo's legacy Things application")
    parser.add_argument("--dsn", required=True, help="the PostgreSQL database with the table things")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    ThingsHandler.dsn = args.dsn
    server = ThreadingHTTPServer((args.host, args.port), ThingsHandler)
    print(f"listening on http://{args.host}:{server.server_port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
