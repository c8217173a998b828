"use strict";
// The live list: the app's list of Things, then every change cdc-sio publishes. Each event is
// (row, meta); meta.id is the change id, increasing for the changes of one row, so an event whose id
// is not above the last one applied to its row is a duplicate (delivery is at-least-once).

const appUrl = document.querySelector('meta[name="app-url"]').content;
const socket = io();
const things = new Map(); // id -> row
const lastChange = new Map(); // id -> the highest change id applied to that row
const alertsShown = new Set(); // change ids
let gettingAlerts = false;
let pending = null; // events that arrived while the list was loading

const $ = (selector) => document.querySelector(selector);
$("#app-link").href = appUrl;

function isNew(row, meta) {
  if (meta.id <= (lastChange.get(row.id) ?? 0)) return false;
  lastChange.set(row.id, meta.id);
  return true;
}

function apply(event, row, meta) {
  if (!isNew(row, meta)) return;
  if (event === "Thing::delete") things.delete(row.id);
  else things.set(row.id, row);
  logEvent(event, row, meta);
  render(event === "Thing::delete" ? null : row.id);
}

for (const event of ["Thing::create", "Thing::update", "Thing::delete"]) {
  socket.on(event, (row, meta) => (pending ? pending.push([event, row, meta]) : apply(event, row, meta)));
}

// Only sockets in the alerts room receive this (and then also Thing::delete, like everybody).
socket.on("Thing::delete::important", (thing, meta) => {
  if (alertsShown.has(meta.id)) return;
  alertsShown.add(meta.id);
  $("#modal-important-record").textContent = thing.name;
  $("#modal-importance").textContent = thing.importance;
  $("#modal").hidden = false;
  $("#modal-close").focus();
});
$("#modal-close").addEventListener("click", () => ($("#modal").hidden = true));

// After every (re)connect: the events from now on are received, so load the list, then apply what
// arrived meanwhile. A reconnected socket is in no room, so rejoin the alerts room.
socket.on("connect", async () => {
  setConnection("live", "live");
  if (gettingAlerts) socket.emit("AlertToggle::join");
  pending = [];
  try {
    const response = await fetch(`${appUrl}/things.json`);
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    things.clear();
    for (const row of await response.json()) things.set(row.id, row);
  } catch (error) {
    setConnection("error", `cannot load the list from the app: ${error.message}`);
  }
  const arrived = pending;
  pending = null;
  for (const [event, row, meta] of arrived) apply(event, row, meta);
  render(null);
});
socket.on("disconnect", () => setConnection("offline", "offline"));

$("#alert-toggle").addEventListener("click", (click) => {
  const button = click.currentTarget;
  const join = !gettingAlerts;
  button.disabled = true;
  socket.emit(join ? "AlertToggle::join" : "AlertToggle::leave", () => {
    gettingAlerts = join;
    button.textContent = join ? "Stop Alerts" : "Get Alerts";
    button.setAttribute("aria-pressed", String(join));
    button.disabled = false;
  });
});

function setConnection(state, text) {
  $("#connection").dataset.state = state;
  $("#connection").textContent = text;
}

function render(changedId) {
  const rows = [...things.values()].sort((a, b) => a.id - b.id).map((thing) => {
    const tr = document.createElement("tr");
    tr.dataset.id = thing.id;
    tr.classList.toggle("important", thing.importance > 100);
    tr.classList.toggle("changed", thing.id === changedId);
    for (const [name, value] of [["id", thing.id], ["name", thing.name], ["importance", thing.importance]]) {
      const td = tr.appendChild(document.createElement("td"));
      td.className = name;
      td.textContent = value;
    }
    return tr;
  });
  $("#things tbody").replaceChildren(...rows);
}

function logEvent(event, row, meta) {
  const item = document.createElement("li");
  const name = item.appendChild(document.createElement("code"));
  name.textContent = event;
  item.append(` #${row.id} ${row.name} · change ${meta.id}`);
  $("#events").prepend(item);
  while ($("#events").children.length > 8) $("#events").lastChild.remove();
}
