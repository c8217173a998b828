"use strict";
// Headless Debian chromium, driven by playwright-core, for the demo's end-to-end test. Reads one JSON
// command a line on stdin, {"id", "op", "page", ...}, and answers {"id", "ok", "value"} or
// {"id", "ok": false, "error"}. Pages are named; a name seen first opens a new tab. Prints
// {"ready": true} once the browser runs. Never downloads a browser: it uses /usr/bin/chromium.

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const { chromium } = require("playwright-core");

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const print = (message) => process.stdout.write(JSON.stringify(message) + "\n");

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "cdc-sio-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1100, height: 760 },
  });
  const pages = new Map();
  const errors = [];

  async function page(name) {
    if (!pages.has(name)) {
      const opened = pages.size === 0 && context.pages().length > 0 ? context.pages()[0] : await context.newPage();
      opened.on("pageerror", (error) => errors.push(`${name}: ${error.message}`));
      opened.on("console", (message) => {
        if (message.type() === "error") errors.push(`${name}: console: ${message.text()}`);
      });
      pages.set(name, opened);
    }
    return pages.get(name);
  }

  const locate = async (c) => (await page(c.page)).locator(c.selector, c.hasText ? { hasText: c.hasText } : {});
  const operations = {
    goto: async (c) => void (await (await page(c.page)).goto(c.url)),
    click: async (c) => (await locate(c)).click({ timeout: c.timeout }),
    fill: async (c) => (await locate(c)).fill(c.value, { timeout: c.timeout }),
    waitFor: async (c) => (await locate(c)).first().waitFor({ state: c.state ?? "visible", timeout: c.timeout }),
    count: async (c) => (await locate(c)).count(),
    isVisible: async (c) => (await locate(c)).isVisible(),
    text: async (c) => (await locate(c)).textContent({ timeout: c.timeout }),
    screenshot: async (c) => void (await (await page(c.page)).screenshot({ path: c.path })),
    errors: async () => errors.splice(0),
  };

  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
    process.exit(0);
  };
  process.on("SIGTERM", close);

  print({ ready: true, version: context.browser()?.version() });
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const command = JSON.parse(line);
    try {
      const operation = operations[command.op];
      if (!operation) throw new Error(`unknown op ${command.op}`);
      print({ id: command.id, ok: true, value: (await operation(command)) ?? null });
    } catch (error) {
      print({ id: command.id, ok: false, error: error.message });
    }
  }
  await close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
