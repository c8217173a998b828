"use strict";

const { createServer } = require("node:http");
const { parseArgs } = require("node:util");
const { Server } = require("socket.io");
const { createClient, createCluster } = require("redis");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { createAdapter: createStreamsAdapter } = require("@socket.io/redis-streams-adapter");

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    // the redis-url is one node of a Redis Cluster
    cluster: { type: "boolean", default: false },
    // the adapter's key / channelPrefix / streamName
    key: { type: "string", default: "socket.io" },
    namespaces: { type: "string", default: "/" },
    adapter: { type: "string", default: "redis" },
    "subscription-mode": { type: "string", default: "dynamic" },
    "stream-count": { type: "string", default: "1" },
    // connection-state recovery window in ms (0: off)
    recovery: { type: "string", default: "0" },
  },
});

function fatalOnError(client) {
  // Fatal, instead of node-redis reconnecting: a server that silently missed messages while
  // reconnecting would turn a real failure into a confusing test timeout.
  client.on("error", (err) => {
    console.error("redis error:", err);
    process.exit(1);
  });
  return client;
}

async function connectPair({ redisUrl, cluster }) {
  const pub = fatalOnError(cluster ? createCluster({ rootNodes: [{ url: redisUrl }] }) : createClient({ url: redisUrl }));
  const sub = fatalOnError(pub.duplicate());
  await Promise.all([pub.connect(), sub.connect()]);
  return { pub, sub };
}

// The adapters fire their SSUBSCRIBEs without awaiting them: keep the promises, so that `settle`
// resolves once every subscription asked for so far (the namespace channels, and in dynamic modes
// the channel of each room created on this server) is active.
function trackShardedSubscriptions(sub) {
  const pending = new Set();
  const sSubscribe = sub.sSubscribe.bind(sub);
  sub.sSubscribe = (...subscribeArgs) => {
    const promise = sSubscribe(...subscribeArgs);
    pending.add(promise);
    promise.finally(() => pending.delete(promise)).catch(() => {});
    return promise;
  };
  return async () => {
    await Promise.all([...pending]);
  };
}

// Each adapter factory returns { adapter, ready(namespaceNames), settle(), close }. `ready` resolves
// once the adapter receives everything published after it; `settle` once room subscriptions are
// active; `close` releases its Redis clients.
const adapters = {
  async redis({ redisUrl, key }) {
    const { pub, sub } = await connectPair({ redisUrl, cluster: false });
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
      async settle() {},
      async close() {
        await Promise.all([pub.quit(), sub.quit()]);
      },
    };
  },

  async "redis-sharded"({ redisUrl, cluster, key, subscriptionMode }) {
    const { pub, sub } = await connectPair({ redisUrl, cluster });
    const settle = trackShardedSubscriptions(sub);
    return {
      adapter: createShardedAdapter(pub, sub, { channelPrefix: key, subscriptionMode }),
      ready: settle,
      settle,
      async close() {
        await Promise.all([pub.quit(), sub.quit()]);
      },
    };
  },

  async "redis-streams"({ redisUrl, key, streamCount }) {
    // Every connection of this adapter (it duplicates the client for each stream) carries this name,
    // so CLIENT LIST shows when its XREADs are blocking, i.e. reading everything added from then on.
    const name = `sio-${key}-${process.pid}`;
    const client = fatalOnError(createClient({ url: redisUrl, name }));
    await client.connect();
    return {
      adapter: createStreamsAdapter(client, {
        streamName: key,
        streamCount,
        channelPrefix: key,
        sessionKeyPrefix: `${key}:session:`,
      }),
      async ready() {
        const deadline = Date.now() + 10000;
        for (;;) {
          const clients = (await client.clientList()).filter((c) => c.name === name && c.cmd === "xread");
          if (clients.length >= streamCount) return;
          if (Date.now() > deadline) throw new Error(`the adapter's ${streamCount} XREADs did not start`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      },
      async settle() {},
      async close() {
        await client.quit();
      },
    };
  },
};

function onJoinOrLeave(socket, method, settle) {
  return async (rooms, ack) => {
    try {
      await socket[method](rooms);
      await settle();
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
  const cluster = await makeAdapter({
    redisUrl: args["redis-url"],
    cluster: args.cluster,
    key: args.key,
    subscriptionMode: args["subscription-mode"],
    streamCount: Number(args["stream-count"]),
  });

  const httpServer = createServer();
  const recovery = Number(args.recovery);
  const io = new Server(httpServer, {
    adapter: cluster.adapter,
    ...(recovery > 0 && { connectionStateRecovery: { maxDisconnectionDuration: recovery } }),
  });
  const namespaces = args.namespaces.split(",").filter(Boolean).map((name) => io.of(name));
  for (const nsp of namespaces) {
    nsp.on("connection", (socket) => {
      socket.on("join", onJoinOrLeave(socket, "join", cluster.settle));
      socket.on("leave", onJoinOrLeave(socket, "leave", cluster.settle));
    });
    // serverSideEmit("server-side", ...args) from anywhere: pass it on to this server's own sockets.
    nsp.on("server-side", (...eventArgs) => nsp.local.emit("server-side", ...eventArgs));
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
