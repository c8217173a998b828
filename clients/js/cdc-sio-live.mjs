// A small browser helper for cdc-sio events: keeps a local model of a table's rows in sync,
// dropping duplicates and stale events by cdc-sio's change id (meta.id), and applying
// "row", "changes" and "flag" payloads. No dependencies; works with any socket.io-client.

/**
 * @typedef {{id: number, op: string, table: string, committed_at: string, left?: boolean, too_large?: boolean}} Meta
 */

export class LiveTable {
  /**
   * @param {{key?: string[], payload?: "row" | "changes" | "flag"}} [options]
   *   key: the primary key columns (default ["id"]); payload: the route's payload strategy.
   */
  constructor({ key = ["id"], payload = "row" } = {}) {
    this.key = key;
    this.payload = payload;
    /** @type {Map<string, Record<string, unknown>>} */
    this.rows = new Map();
    /** @type {Map<string, number>} the last change id applied to each row */
    this.lastChange = new Map();
  }

  /** The map key of a row (or of a payload that carries the primary key). */
  keyOf(row) {
    return JSON.stringify(this.key.map((column) => row[column]));
  }

  /** Load rows fetched from the application (e.g. after connecting), keeping newer live changes. */
  load(rows) {
    for (const row of rows) {
      const id = this.keyOf(row);
      if (!this.lastChange.has(id)) this.rows.set(id, { ...row });
    }
  }

  /**
   * Apply one event. Returns false when it was a duplicate or older than what is already applied
   * (cdc-sio delivers at least once; the change id increases for the changes of one row).
   * @param {Record<string, unknown>} payload @param {Meta} meta
   */
  apply(payload, meta) {
    if (meta.op === "truncate") {
      this.rows.clear();
      return true;
    }
    const id = this.keyOf(payload);
    if ((this.lastChange.get(id) ?? -Infinity) >= meta.id) return false;
    this.lastChange.set(id, meta.id);
    if (meta.op === "delete" || meta.left) {
      this.rows.delete(id);
    } else if (this.payload === "changes" || this.payload === "flag" || meta.too_large) {
      this.rows.set(id, { ...(this.rows.get(id) ?? {}), ...payload });
    } else {
      this.rows.set(id, { ...payload });
    }
    return true;
  }

  /**
   * Subscribe to a socket's events for this table and call onChange after each applied one.
   * @param {{on: (event: string, listener: (...args: any[]) => void) => unknown}} socket
   * @param {string[]} events e.g. ["Thing::create", "Thing::update", "Thing::delete"]
   * @param {(table: LiveTable, payload: Record<string, unknown>, meta: Meta) => void} [onChange]
   */
  bind(socket, events, onChange = () => {}) {
    for (const event of events) {
      socket.on(event, (payload, meta) => {
        if (this.apply(payload, meta)) onChange(this, payload, meta);
      });
    }
    return this;
  }

  values() {
    return [...this.rows.values()];
  }
}
