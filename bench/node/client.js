"use strict";
// A socket.io-client that measures instead of printing each event (the benchmark sends up to
// 100,000 events a run). Commands on stdin, one per line, each answered by one JSON line:
//   reset          forget what was received
//   expect N       answer once N events have arrived: {"reached": N, "last_us": arrival of the Nth}
//   report         {"count": n, "latencies_us": [...]}: arrival minus the row's sent_us, per event
// Times are microseconds of the system clock, the clock PostgreSQL's clock_timestamp() reads.

const { parseArgs } = require("node:util");
const readline = require("node:readline");
const { io } = require("socket.io-client");

const { values: args } = parseArgs({
  options: { url: { type: "string" }, nsp: { type: "string", default: "/" }, rooms: { type: "string", default: "" } },
});
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

let latencies = [];
let expected = null;
let lastUs = 0;

const socket = io(new URL(args.nsp, args.url).href, { transports: ["websocket"], reconnection: false });
socket.onAny((_event, row) => {
  lastUs = nowUs();
  latencies.push(row && typeof row.sent_us === "number" ? lastUs - row.sent_us : null);
  if (expected !== null && latencies.length >= expected) {
    print({ reached: latencies.length, last_us: lastUs });
    expected = null;
  }
});
socket.on("connect", async () => {
  try {
    await socket.timeout(10000).emitWithAck("join", args.rooms.split(",").filter(Boolean));
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
socket.on("disconnect", (reason) => {
  if (reason !== "io client disconnect") {
    console.error("disconnected:", reason);
    process.exit(1);
  }
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, value] = line.trim().split(/\s+/);
  if (command === "reset") {
    latencies = [];
    print({ reset: true });
  } else if (command === "expect") {
    expected = Number(value);
    if (latencies.length >= expected) {
      print({ reached: latencies.length, last_us: lastUs });
      expected = null;
    }
  } else if (command === "report") {
    print({ count: latencies.length, latencies_us: latencies });
  }
}).on("close", () => {
  socket.disconnect();
  process.exit(0);
});
