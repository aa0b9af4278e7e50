// The statistics the bench reports: nearest-rank percentiles and the ns → ms summary.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import {
  AddLineItemSchema,
  GetShoppingCartSchema,
} from "../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";
import { encodeGetCartRequests, encodeRequests, getCartHttpPath, latencyStats, percentile } from "./load.js";
import { selfTimes } from "./profile-summary.js";

describe("percentile", () => {
  const oneToHundred = Array.from({ length: 100 }, (_, i) => i + 1);

  test("nearest rank over 1..100 is the value itself", () => {
    assert.equal(percentile(oneToHundred, 50), 50);
    assert.equal(percentile(oneToHundred, 90), 90);
    assert.equal(percentile(oneToHundred, 99), 99);
    assert.equal(percentile(oneToHundred, 100), 100);
    assert.equal(percentile(oneToHundred, 0.5), 1);
  });

  test("small arrays round the rank up", () => {
    assert.equal(percentile([10, 20, 30, 40], 50), 20);
    assert.equal(percentile([10, 20, 30, 40], 51), 30);
    assert.equal(percentile([10, 20, 30, 40], 99), 40);
    assert.equal(percentile([7], 50), 7);
    assert.equal(percentile([7], 99), 7);
  });

  test("empty is NaN, and p outside (0, 100] is refused", () => {
    assert.ok(Number.isNaN(percentile([], 50)));
    assert.throws(() => percentile([1], 0), RangeError);
    assert.throws(() => percentile([1], 101), RangeError);
  });
});

describe("latencyStats", () => {
  test("sorts, converts ns to ms and finds p50/p90/p99/max/mean", () => {
    // 1..1000 ms in ns, shuffled
    const ns = Array.from({ length: 1000 }, (_, i) => (i + 1) * 1e6);
    for (let i = ns.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1);
      [ns[i], ns[j]] = [ns[j]!, ns[i]!];
    }
    const s = latencyStats(ns);
    assert.deepEqual(s, { count: 1000, p50Ms: 500, p90Ms: 900, p99Ms: 990, maxMs: 1000, meanMs: 500.5 });
  });

  test("a heavy tail shows in p99 and max but not p50", () => {
    const ns = [...Array.from({ length: 98 }, () => 1e6), 200e6, 300e6];
    const s = latencyStats(ns);
    assert.equal(s.p50Ms, 1);
    assert.equal(s.p90Ms, 1);
    assert.equal(s.p99Ms, 200);
    assert.equal(s.maxMs, 300);
  });

  test("sub-millisecond values keep microsecond precision", () => {
    assert.equal(latencyStats([123_456]).p50Ms, 0.123);
  });

  test("no samples report zeros rather than NaN (valid JSON)", () => {
    assert.deepEqual(latencyStats([]), { count: 0, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0 });
  });
});

test("requests are pre-encoded AddLineItems, one per cart and product", () => {
  const requests = encodeRequests(3, 2);
  assert.equal(requests.length, 6);
  const item = fromBinary(AddLineItemSchema, requests[2 * 2 + 1]!);
  assert.equal(item.userId, "cart-2");
  assert.equal(item.productId, "product-1");
  assert.equal(item.quantity, 1);
});

test("profile summary sums self time per function from samples and time deltas", () => {
  const frame = (functionName: string, line: number) => ({ functionName, url: "file:///x/node_modules/pkg/a.js", lineNumber: line, columnNumber: 0 });
  const { rows, total } = selfTimes({
    nodes: [
      { id: 1, callFrame: frame("(root)", -1), children: [2, 3] },
      { id: 2, callFrame: frame("hot", 9) },
      { id: 3, callFrame: frame("cold", 19) },
    ],
    startTime: 0,
    endTime: 4000,
    samples: [2, 2, 3, 2],
    timeDeltas: [0, 1000, 1000, 1000],
  });
  assert.equal(total, 3);
  assert.deepEqual(rows[0], { name: "hot", location: "pkg/a.js:10", selfMs: 2, percent: 66.7 });
  assert.deepEqual(rows[1], { name: "cold", location: "pkg/a.js:20", selfMs: 1, percent: 33.3 });
});

describe("GetCart requests", () => {
  test("gRPC: one GetShoppingCart per cart; HTTP: GET /carts/{user_id}", () => {
    const reqs = encodeGetCartRequests(3);
    assert.equal(reqs.length, 3);
    assert.deepEqual(
      reqs.map((b) => fromBinary(GetShoppingCartSchema, b).userId),
      ["cart-0", "cart-1", "cart-2"],
    );
    assert.equal(getCartHttpPath(7), "/carts/cart-7");
  });
});
