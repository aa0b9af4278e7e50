// The console end to end in a real browser: Debian's chromium (installed by .ci/run) driven by
// playwright-core, against a proxy in front of the SDK's shopping cart and the SDK tests' eventing
// subscriber (whose inbox consumer fails on the text "fail") on a SQLite store. One page load.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { serve, type UserFunctionServer } from "@cloudstate-ts/sdk";
import { cart } from "../../../../examples/shopping-cart/src/cart.js";
import { counterEntity } from "../../../sdk/src/testdata/counter.js";
import { eventSubscriber } from "../../../sdk/src/testdata/eventing.js";
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
  uf = await serve({ entities: [cart, counterEntity(), eventSubscriber()], port: 0, host: "127.0.0.1", logger: quiet });
  proxy = await startTestProxy(uf.port, {
    console: true,
    store: `sqlite:${join(dir, "store.db")}`,
    eventingMaxAttempts: 2,
    eventingBackoffMinMs: 10,
    eventingBackoffMaxMs: 20,
    eventingCommitIntervalMs: 20,
    eventingPollIntervalMs: 50,
  });
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

/** Publishes text to the inbox topic; resolves with its offset. */
async function publish(id: string, text: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${proxy!.port}/eventing/topics/inbox`, {
    method: "POST",
    headers: { "ce-specversion": "1.0", "ce-id": id, "ce-source": "tests/console", "ce-type": "text", "content-type": "text/plain" },
    body: text,
  });
  assert.equal(res.status, 200);
  return Number(((await res.json()) as { offset: string }).offset);
}

async function deadLetterCount(): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${proxy!.port}/console/api/dead-letters`);
  return ((await res.json()) as { count: number }).count;
}

test("the console calls AddItem from its form, shows the cart, decodes the cart's journal, and shows eventing and its dead letters", async () => {
  // A message the subscriber fails on becomes a dead letter (2 attempts), before the page loads.
  await publish("m-1", "fail");
  await publish("m-2", "hello");
  for (const deadline = Date.now() + 10_000; (await deadLetterCount()) < 1; ) {
    assert.ok(Date.now() < deadline, "timed out waiting for the dead letter");
    await new Promise((r) => setTimeout(r, 25));
  }

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

  // Eventing: the consumers with their offsets, the topics, and the dead letter with its error.
  const inbox = page.locator('#consumers tr.consumer[data-source="topic:inbox"]');
  await inbox.waitFor();
  const consumer = (await inbox.textContent()) ?? "";
  assert.match(consumer, /topic:inbox → sdktest\.EventSubscriber/);
  assert.match(consumer, /sdktest-group/);
  await page.locator('#consumers tr.consumer[data-source="event-log:counter"]').waitFor();
  assert.match((await page.locator('#topics tr.topic[data-topic="inbox"]').textContent()) ?? "", /inbox\s*2\s*2/);
  const letter = page.locator("#dead-letters tr.dead-letter");
  await letter.waitFor();
  assert.equal(await letter.count(), 1);
  const letterText = (await letter.textContent()) ?? "";
  assert.match(letterText, /told to fail/);
  assert.match(letterText, /topic:inbox/);
  assert.match(letterText, /sdktest-group/);
  assert.equal((await letter.locator("td").nth(8).textContent())?.trim(), "fail", "the data, decoded");
  assert.equal(await page.isVisible("#eventing-none"), false);

  // The charts saw the calls.
  await page.waitForTimeout(1200);
  mkdirSync(join(ROOT, "test-artifacts"), { recursive: true });
  await page.screenshot({ path: join(ROOT, "test-artifacts", "console.png"), fullPage: true });

  // Dismissed: gone from the page and from the store.
  await letter.locator("button.dismiss").click();
  await letter.waitFor({ state: "detached" });
  assert.equal(await deadLetterCount(), 0);
  await page.locator("#dead-letters", { hasText: "(none)" }).waitFor();
  assert.equal((await page.textContent("#dead-letters-count"))?.trim(), "(0)");
  assert.deepEqual(errors, []);
});
