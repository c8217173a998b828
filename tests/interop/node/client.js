"use strict";

// A socket.io-client that prints one JSON line per thing that happens to it:
// {"joined": true, "id"} once connected and in its rooms, {"event", "args"} per event,
// {"disconnected": reason} (with "nsp" for the --also-nsp socket), {"reconnected": true, "recovered"}. Commands arrive as lines on stdin:
// "drop" closes the transport as a lost network would, "reconnect" connects again.

const { parseArgs } = require("node:util");
const readline = require("node:readline");
const { io } = require("socket.io-client");

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    nsp: { type: "string", default: "/" },
    rooms: { type: "string", default: "" },
    // a second namespace on the same connection, to see whether the connection itself was closed
    "also-nsp": { type: "string" },
  },
});
if (!args.url) {
  console.error("--url is required");
  process.exit(2);
}

const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

function toJSONSafe(value) {
  if (ArrayBuffer.isView(value)) {
    const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    return { $binary: bytes.toString("base64") };
  }
  if (value instanceof ArrayBuffer) {
    return { $binary: Buffer.from(value).toString("base64") };
  }
  if (Array.isArray(value)) return value.map(toJSONSafe);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJSONSafe(v)]));
  }
  return value;
}

const rooms = args.rooms.split(",").filter(Boolean);
const socket = io(new URL(args.nsp, args.url).href, {
  transports: ["websocket"],
  reconnection: false,
});

const also = args["also-nsp"] ? socket.io.socket(args["also-nsp"]) : null;
also?.on("disconnect", (reason) => print({ disconnected: reason, nsp: args["also-nsp"] }));
const alsoConnected = also ? new Promise((resolve) => also.once("connect", resolve)) : Promise.resolve();

let joined = false;
socket.onAny((event, ...eventArgs) => print({ event, args: toJSONSafe(eventArgs) }));
socket.on("connect", async () => {
  if (joined) {
    print({ reconnected: true, recovered: socket.recovered });
    return;
  }
  try {
    await socket.timeout(10000).emitWithAck("join", rooms);
    await alsoConnected;
    joined = true;
    print({ joined: true, id: socket.id });
  } catch (err) {
    console.error("join failed:", err.message);
    process.exit(1);
  }
});
socket.on("connect_error", (err) => {
  console.error("connect_error:", err.message);
  process.exit(1);
});
socket.on("disconnect", (reason) => print({ disconnected: reason }));

const commands = {
  drop: () => socket.io.engine.close(),
  reconnect: () => socket.connect(),
};

const stop = () => {
  socket.disconnect();
  process.exit(0);
};
process.on("SIGTERM", stop);
readline
  .createInterface({ input: process.stdin })
  .on("line", (line) => commands[line.trim()]?.())
  .on("close", stop);
