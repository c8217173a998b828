"use strict";

const { createServer } = require("node:http");
const { parseArgs } = require("node:util");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const { createAdapter } = require("@socket.io/redis-adapter");

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    key: { type: "string", default: "socket.io" },
    namespaces: { type: "string", default: "/" },
    adapter: { type: "string", default: "redis" },
  },
});

// Each adapter factory returns { adapter, ready(namespaceNames), close }. `ready` resolves once
// the adapter receives everything published after it; `close` releases its Redis clients.
const adapters = {
  async redis({ redisUrl, key }) {
    const pub = createClient({ url: redisUrl });
    const sub = pub.duplicate();
    // Fatal, instead of node-redis reconnecting: a server that silently missed messages while
    // reconnecting would turn a real failure into a confusing test timeout.
    for (const client of [pub, sub]) {
      client.on("error", (err) => {
        console.error("redis error:", err);
        process.exit(1);
      });
    }
    await Promise.all([pub.connect(), sub.connect()]);
    return {
      adapter: createAdapter(pub, sub, { key }),
      // The adapter fires its (P)SUBSCRIBEs without awaiting them. Redis answers commands on one
      // connection in order, so a PONG on the subscriber connection means they have all been
      // processed; NUMSUB from the other connection then double-checks it.
      async ready(namespaces) {
        await sub.ping();
        const channels = namespaces.map((nsp) => `${key}-request#${nsp}#`);
        const counts = await pub.pubSubNumSub(channels);
        const missing = channels.filter((channel) => !(counts[channel] >= 1));
        if (missing.length > 0) {
          throw new Error(`adapter not subscribed to ${missing.join(", ")}`);
        }
      },
      async close() {
        await Promise.all([pub.quit(), sub.quit()]);
      },
    };
  },
};

function onJoinOrLeave(socket, method) {
  return async (rooms, ack) => {
    try {
      await socket[method](rooms);
      if (typeof ack === "function") ack();
    } catch (err) {
      console.error(`${method} failed:`, err);
    }
  };
}

async function main() {
  const makeAdapter = adapters[args.adapter];
  if (!makeAdapter) {
    throw new Error(`unknown --adapter ${args.adapter}; known: ${Object.keys(adapters).join(", ")}`);
  }
  const cluster = await makeAdapter({ redisUrl: args["redis-url"], key: args.key });

  const httpServer = createServer();
  const io = new Server(httpServer, { adapter: cluster.adapter });
  const namespaces = args.namespaces.split(",").filter(Boolean).map((name) => io.of(name));
  for (const nsp of namespaces) {
    nsp.on("connection", (socket) => {
      socket.on("join", onJoinOrLeave(socket, "join"));
      socket.on("leave", onJoinOrLeave(socket, "leave"));
    });
  }

  await new Promise((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(Number(args.port), "127.0.0.1", resolve);
  });
  await cluster.ready(namespaces.map((nsp) => nsp.name));

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    try {
      await io.close();
      await cluster.close();
    } catch (err) {
      console.error("shutdown error:", err);
    }
    process.exit(0);
  };
  process.on("SIGTERM", stop);

  process.stdout.write(JSON.stringify({ ready: true, port: httpServer.address().port }) + "\n");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
