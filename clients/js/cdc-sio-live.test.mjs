import assert from "node:assert/strict";
import { test } from "node:test";

import { LiveTable } from "./cdc-sio-live.mjs";

const meta = (id, op = "update", extra = {}) => ({ id, op, table: "public.things", committed_at: "t", ...extra });

test("applies rows and drops duplicates and stale events by change id", () => {
  const things = new LiveTable();
  assert.equal(things.apply({ id: 7, name: "a" }, meta(1, "insert")), true);
  assert.equal(things.apply({ id: 7, name: "b" }, meta(3)), true);
  assert.equal(things.apply({ id: 7, name: "a" }, meta(1, "insert")), false); // a replay after a crash
  assert.equal(things.apply({ id: 7, name: "stale" }, meta(2)), false);
  assert.deepEqual(things.values(), [{ id: 7, name: "b" }]);
});

test("merges changes payloads into the known row", () => {
  const things = new LiveTable({ payload: "changes" });
  things.load([{ id: 1, name: "a", importance: 5 }]);
  things.apply({ id: 1, importance: 500 }, meta(10));
  assert.deepEqual(things.values(), [{ id: 1, name: "a", importance: 500 }]);
});

test("deletes, rows that left the room, and truncate remove rows", () => {
  const things = new LiveTable({ key: ["org", "id"] });
  things.load([{ org: 1, id: 1 }, { org: 1, id: 2 }, { org: 1, id: 3 }]);
  things.apply({ org: 1, id: 1 }, meta(5, "delete"));
  things.apply({ org: 1, id: 2 }, meta(6, "update", { left: true }));
  assert.deepEqual(things.values(), [{ org: 1, id: 3 }]);
  things.apply({}, meta(7, "truncate"));
  assert.deepEqual(things.values(), []);
});

test("load keeps a change that arrived while the list was being fetched", () => {
  const things = new LiveTable();
  things.apply({ id: 1, name: "live" }, meta(9));
  things.load([{ id: 1, name: "fetched before the change" }, { id: 2, name: "b" }]);
  assert.deepEqual(things.values(), [{ id: 1, name: "live" }, { id: 2, name: "b" }]);
});

test("bind listens on a socket and reports applied events only", () => {
  const listeners = {};
  const socket = { on: (event, listener) => (listeners[event] = listener) };
  const seen = [];
  new LiveTable().bind(socket, ["Thing::update"], (_, payload) => seen.push(payload.name));
  listeners["Thing::update"]({ id: 1, name: "x" }, meta(1));
  listeners["Thing::update"]({ id: 1, name: "x" }, meta(1));
  assert.deepEqual(seen, ["x"]);
});
