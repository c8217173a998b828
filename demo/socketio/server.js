"use strict";
// The demo's Socket.IO server, as in the talk: the Redis adapter (cdc-sio publishes through it), a room
// for alerts, and the live page. Settings: PORT, REDIS_URL, SOCKETIO_KEY, APP_URL (where the page loads
// the list of Things from).

const { createServer } = require("node:http");
const { readFileSync } = require("node:fs");
const path = require("node:path");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-adapter");

const port = Number(process.env.PORT ?? 3000);
const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const key = process.env.SOCKETIO_KEY ?? "socket.io";
const appUrl = process.env.APP_URL ?? "http://127.0.0.1:8000";
const ALERTS_ROOM = "ROOM::ExtraImportantUpdates";

const read = (name) => readFileSync(path.join(__dirname, "public", name), "utf8");
const escapeAttribute = (text) => text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
const files = {
  "/": ["text/html", read("index.html").replace("%APP_URL%", escapeAttribute(appUrl))],
  "/live.js": ["text/javascript", read("live.js")],
  "/style.css": ["text/css", read("style.css")],
};

function servePage(request, response) {
  const file = files[new URL(request.url, "http://localhost").pathname];
  if (!file) {
    response.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
    return;
  }
  response.writeHead(200, { "Content-Type": `${file[0]}; charset=utf-8` }).end(file[1]);
}

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);

  const httpServer = createServer(servePage);
  const io = new Server(httpServer, { adapter: createAdapter(pub, sub, { key }) });
  await sub.ping(); // answered after the adapter's subscriptions: nothing published from now on is missed

  io.on("connection", (socket) => {
    socket.on("AlertToggle::join", async (ack) => {
      await socket.join(ALERTS_ROOM);
      if (typeof ack === "function") ack();
    });
    socket.on("AlertToggle::leave", async (ack) => {
      await socket.leave(ALERTS_ROOM);
      if (typeof ack === "function") ack();
    });
  });

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    io.close();
    Promise.all([pub.quit(), sub.quit()]).finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);

  httpServer.listen(port, "127.0.0.1", () => {
    console.log(`listening on http://127.0.0.1:${httpServer.address().port}/`);
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
