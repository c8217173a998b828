"use strict";

const { parseArgs } = require("node:util");
const { io } = require("socket.io-client");

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    nsp: { type: "string", default: "/" },
    rooms: { type: "string", default: "" },
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

socket.onAny((event, ...eventArgs) => print({ event, args: toJSONSafe(eventArgs) }));
socket.on("connect", async () => {
  try {
    await socket.timeout(10000).emitWithAck("join", rooms);
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

const stop = () => {
  socket.disconnect();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.stdin.on("end", stop).resume();
