// The console end to end in a real browser: Debian's chromium (installed by .ci/run) driven by
// playwright-core, against a proxy in front of the SDK's shopping cart on a SQLite store.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import { cart } from "../../../../examples/shopping-cart/src/cart.js";
import { startTestProxy } from "../../../../tests/support/proxy.js";
import type { RunningProxy } from "../index.js";

const CHROMIUM = "/usr/bin/chromium";
const ROOT = resolve(fileURLToPath(new URL("../../../..", import.meta.url)));
const quiet = { info() {}, warn() {}, error() {} };

let uf: UserFunctionServer | undefined;
let proxy: RunningProxy | undefined;
let browser: BrowserContext | undefined;
let page: Page;
let dir: string;

before(async () => {
  // A missing browser is a broken test machine, not a reason to skip: .ci/run installs it.
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run does it)`);
  dir = mkdtempSync(join(tmpdir(), "console-test-"));
  uf = await serve({ entities: [cart], port: 0, host: "127.0.0.1", logger: quiet });
  proxy = await startTestProxy(uf.port, { console: true, store: `sqlite:${join(dir, "store.db")}` });
  // A fresh profile (playwright's --user-data-dir) per run.
  browser = await chromium.launchPersistentContext(join(dir, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
});

after(async () => {
  await browser?.close();
  await proxy?.stop();
  await uf?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("the console calls AddItem from its form, shows the cart, and decodes the cart's journal", async () => {
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`http://127.0.0.1:${proxy!.port}/console/`);

  // Services with their entity types, and the example body generated from the descriptor.
  await page.getByText("cloudstate.eventsourced.EventSourced").first().waitFor();
  await page.click('[data-method="com.example.shoppingcart.ShoppingCart/AddItem"]');
  const example = JSON.parse(await page.inputValue("#call-body")) as Record<string, unknown>;
  assert.deepEqual(example, { userId: "", productId: "", name: "", quantity: 0 });

  await page.fill("#call-body", JSON.stringify({ userId: "alice", productId: "apple-42", name: "Apple", quantity: 3 }));
  await page.click("#call-submit");
  await page.waitForSelector("#call-reply[data-done]");
  assert.equal((await page.textContent("#call-reply"))?.trim(), "{}");

  // GetCart shows the item.
  await page.click('[data-method="com.example.shoppingcart.ShoppingCart/GetCart"]');
  await page.fill("#call-body", JSON.stringify({ userId: "alice" }));
  await page.click("#call-submit");
  await page.locator("#call-reply", { hasText: "apple-42" }).waitFor();
  const reply = JSON.parse((await page.textContent("#call-reply")) ?? "") as unknown;
  assert.deepEqual(reply, { items: [{ productId: "apple-42", name: "Apple", quantity: 3 }] });

  // The cart's journal, its event decoded with the user's descriptors.
  await page.click("#entities-refresh");
  await page.click('[data-entity="alice"]');
  const event = page.locator("#journal tr.event").first();
  await event.waitFor();
  const text = (await event.textContent()) ?? "";
  assert.match(text, /com\.example\.shoppingcart\.domain\.ItemAdded/);
  assert.match(text, /"productId": "apple-42"/);

  // The charts saw the calls.
  await page.waitForTimeout(1200);
  mkdirSync(join(ROOT, "test-artifacts"), { recursive: true });
  await page.screenshot({ path: join(ROOT, "test-artifacts", "console.png"), fullPage: true });
  assert.deepEqual(errors, []);
});
