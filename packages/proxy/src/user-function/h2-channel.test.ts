// The lean HTTP/2 client against a real grpc-js server on loopback (bytes in, bytes out), plus a raw
// node:http2 server where the test must control exactly how the bytes are cut into DATA frames.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import * as net from "node:net";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, test } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { frame, H2Channel, type FrameCodec, type H2BidiStream } from "./h2-channel.js";

const bytes: FrameCodec<Buffer, Buffer> = { encode: (m) => frame(m), decode: (b) => b };
const identity = (b: Buffer) => b;

type Handler = (call: grpc.ServerDuplexStream<Buffer, Buffer>) => void;

/** A grpc-js server with one bidi method whose behaviour each test sets. */
async function startServer(port = 0): Promise<{ server: grpc.Server; port: number; setHandler(h: Handler): void }> {
  let handler: Handler = (call) => {
    call.on("data", (m: Buffer) => call.write(m));
    call.on("end", () => call.end());
  };
  const server = new grpc.Server({ "grpc.max_receive_message_length": -1, "grpc.max_send_message_length": -1 });
  server.addService(
    {
      bidi: {
        path: "/test.Echo/Bidi",
        requestStream: true,
        responseStream: true,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    },
    { bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => handler(call) },
  );
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, port: bound, setHandler: (h) => (handler = h) };
}

interface Collected {
  messages: Buffer[];
  errors: grpc.ServiceError[];
  ends: number;
  done: Promise<void>;
}

/** Records everything a stream emits; `done` settles on its final event. */
function collect(stream: H2BidiStream<Buffer, Buffer>): Collected {
  const c: Collected = { messages: [], errors: [], ends: 0, done: Promise.resolve() };
  c.done = new Promise((resolve) => {
    stream.on("data", (m) => c.messages.push(m));
    stream.on("error", (e) => {
      c.errors.push(e);
      resolve();
    });
    stream.on("end", () => {
      c.ends++;
      resolve();
    });
  });
  return c;
}

const PATH = "/test.Echo/Bidi";

describe("H2Channel against a grpc-js server", () => {
  let s: Awaited<ReturnType<typeof startServer>>;
  let channel: H2Channel;
  before(async () => {
    s = await startServer();
    channel = new H2Channel("127.0.0.1", s.port, { maxMessageBytes: 64 * 1024 * 1024 });
  });
  after(() => {
    channel.close();
    s.server.forceShutdown();
  });

  test("echoes messages in order; end half-closes (the server sees end) and the OK status gives end", async () => {
    let serverSawEnd = false;
    s.setHandler((call) => {
      call.on("data", (m: Buffer) => call.write(m));
      call.on("end", () => {
        serverSawEnd = true;
        call.end();
      });
    });
    const stream = channel.openStream(PATH, bytes);
    const c = collect(stream);
    const sent = [Buffer.alloc(0), Buffer.from("a"), randomBytes(1000), Buffer.from("last")];
    for (const m of sent) stream.write(m);
    stream.end();
    await c.done;
    assert.equal(serverSawEnd, true);
    assert.deepEqual(c.messages, sent);
    assert.deepEqual([c.ends, c.errors.length], [1, 0]);
  });

  test("many small messages at once (several frames per chunk) and large ones (one message over many chunks)", async () => {
    const stream = channel.openStream(PATH, bytes);
    const c = collect(stream);
    const sent: Buffer[] = [];
    for (let i = 0; i < 2_000; i++) sent.push(Buffer.from(`message ${i} `.repeat(1 + (i % 7))));
    sent.push(randomBytes(5 * 1024 * 1024), Buffer.from("after the big one"), randomBytes(70_000));
    for (const m of sent) stream.write(m);
    stream.end();
    await c.done;
    assert.equal(c.errors.length, 0, c.errors[0]?.message);
    assert.equal(c.messages.length, sent.length);
    for (let i = 0; i < sent.length; i++) assert.ok(c.messages[i]!.equals(sent[i]!), `message ${i}`);
  });

  test("a server error status after messages: error with its code and percent-decoded details", async () => {
    const details = "no such cart: ü/100% \"quoted\" 😀";
    s.setHandler((call) => {
      call.write(Buffer.from("one"));
      call.on("data", () => call.emit("error", { code: grpc.status.NOT_FOUND, details }));
    });
    const stream = channel.openStream(PATH, bytes);
    const c = collect(stream);
    stream.write(Buffer.from("go"));
    await c.done;
    assert.deepEqual(c.messages, [Buffer.from("one")]);
    assert.equal(c.ends, 0);
    assert.equal(c.errors.length, 1);
    assert.equal(c.errors[0]!.code, grpc.status.NOT_FOUND);
    assert.equal(c.errors[0]!.details, details);
    assert.ok(c.errors[0]!.metadata instanceof grpc.Metadata);
  });

  test("a trailers-only error (status in the only HEADERS frame)", async () => {
    s.setHandler((call) => call.emit("error", { code: grpc.status.FAILED_PRECONDITION, details: "not now" }));
    const c = collect(channel.openStream(PATH, bytes));
    await c.done;
    assert.deepEqual(
      c.errors.map((e) => [e.code, e.details]),
      [[grpc.status.FAILED_PRECONDITION, "not now"]],
    );
    // An unknown method is answered trailers-only by grpc-js too.
    const u = collect(channel.openStream("/test.Echo/Nope", bytes));
    await u.done;
    assert.equal(u.errors[0]?.code, grpc.status.UNIMPLEMENTED);
  });

  test("the server ending the stream with OK gives end after its messages", async () => {
    s.setHandler((call) => {
      call.write(Buffer.from("bye"));
      call.end();
    });
    const c = collect(channel.openStream(PATH, bytes));
    await c.done;
    assert.deepEqual(c.messages, [Buffer.from("bye")]);
    assert.deepEqual([c.ends, c.errors.length], [1, 0]);
  });

  test("a stream the server finished is closed on our side too: a graceful shutdown of both ends completes", async () => {
    const own = await startServer();
    const ch = new H2Channel("127.0.0.1", own.port, { maxMessageBytes: 1 << 20 });
    // One stream the server ends with OK, one with an error; the client never ends either.
    own.setHandler((call) => {
      call.on("data", (m: Buffer) => (String(m) === "ok" ? call.end() : call.emit("error", { code: grpc.status.ABORTED, details: "no" })));
    });
    const ok = ch.openStream(PATH, bytes);
    const failed = ch.openStream(PATH, bytes);
    const [a, b] = [collect(ok), collect(failed)];
    ok.write(Buffer.from("ok"));
    failed.write(Buffer.from("fail"));
    await Promise.all([a.done, b.done]);
    assert.deepEqual([a.ends, b.errors[0]?.code], [1, grpc.status.ABORTED]);
    ch.close();
    const shutDown = new Promise<void>((resolve) => own.server.tryShutdown(() => resolve()));
    const timedOut = sleep(3_000).then(() => "timed out");
    assert.notEqual(await Promise.race([shutDown.then(() => "done"), timedOut]), "timed out", "the server's graceful shutdown waits for no stream");
    own.server.forceShutdown();
  });

  test("cancel resets the stream: the server sees it cancelled, and the client gets no further events", async () => {
    let serverCancelled: () => void = () => undefined;
    const cancelled = new Promise<void>((resolve) => (serverCancelled = resolve));
    s.setHandler((call) => {
      call.on("cancelled", () => serverCancelled());
      call.on("data", (m: Buffer) => {
        call.write(m);
        // keeps writing after the cancel: none of it may reach the client's listeners
        setTimeout(() => call.write(Buffer.from("late")), 20);
      });
    });
    const stream = channel.openStream(PATH, bytes);
    const c = collect(stream);
    stream.write(Buffer.from("x"));
    while (c.messages.length === 0) await sleep(1);
    stream.cancel();
    stream.write(Buffer.from("ignored after cancel"));
    await cancelled;
    await sleep(100);
    assert.deepEqual(c.messages, [Buffer.from("x")]);
    assert.deepEqual([c.ends, c.errors.length], [0, 0]);
  });

  test("many long-lived streams at once on one session (more than HTTP/2's usual 100)", async () => {
    s.setHandler((call) => {
      call.on("data", (m: Buffer) => call.write(m));
      call.on("end", () => call.end());
    });
    const streams = Array.from({ length: 300 }, () => channel.openStream(PATH, bytes));
    const cs = streams.map(collect);
    streams.forEach((st, i) => st.write(Buffer.from(`hello ${i}`)));
    for (let i = 0; i < cs.length; i++) while (cs[i]!.messages.length === 0) await sleep(2);
    streams.forEach((st) => st.end());
    await Promise.all(cs.map((c) => c.done));
    cs.forEach((c, i) => assert.deepEqual([c.messages.map(String), c.ends], [[`hello ${i}`], 1]));
  });

  test("a message over maxMessageBytes is RESOURCE_EXHAUSTED, received or sent", async () => {
    const small = new H2Channel("127.0.0.1", s.port, { maxMessageBytes: 1000 });
    try {
      s.setHandler((call) => call.on("data", () => call.write(randomBytes(1001))));
      const r = small.openStream(PATH, bytes);
      const rc = collect(r);
      r.write(Buffer.from("please send a big one"));
      await rc.done;
      assert.equal(rc.errors[0]?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(rc.errors[0]!.details, /1001 vs\. 1000/);

      const w = small.openStream(PATH, bytes);
      const wc = collect(w);
      w.write(randomBytes(1001));
      await wc.done;
      assert.equal(wc.errors[0]?.code, grpc.status.RESOURCE_EXHAUSTED);
      assert.match(wc.errors[0]!.details, /Sent message larger than max/);
    } finally {
      small.close();
    }
  });
});

describe("H2Channel when the connection fails", () => {
  test("nothing listening: UNAVAILABLE; once a server is up, the next stream connects (lazy reconnect)", async () => {
    const probe = net.createServer();
    probe.listen(0, "127.0.0.1");
    await once(probe, "listening");
    const port = (probe.address() as net.AddressInfo).port;
    probe.close();
    await once(probe, "close");
    const channel = new H2Channel("127.0.0.1", port, { maxMessageBytes: 1 << 20 });
    try {
      const stream = channel.openStream(PATH, bytes);
      const c = collect(stream);
      stream.write(Buffer.from("into the void"));
      await c.done;
      assert.equal(c.errors[0]?.code, grpc.status.UNAVAILABLE);
      assert.match(c.errors[0]!.details, /ECONNREFUSED/);

      const s = await startServer(port);
      try {
        const again = channel.openStream(PATH, bytes);
        const a = collect(again);
        again.write(Buffer.from("hello"));
        again.end();
        await a.done;
        assert.deepEqual([a.messages.map(String), a.ends, a.errors.length], [["hello"], 1, 0]);
      } finally {
        s.server.forceShutdown();
      }
    } finally {
      channel.close();
    }
  });

  test("the server killed mid-stream (the connection drops without GOAWAY): UNAVAILABLE on every open stream, then reconnects", async () => {
    const s = await startServer();
    // A TCP relay in front of the server: destroying its sockets is what a kill -9 looks like to us.
    const sockets = new Set<net.Socket>();
    const relay = net.createServer((client) => {
      const upstream = net.connect(s.port, "127.0.0.1");
      for (const sock of [client, upstream]) {
        sockets.add(sock);
        sock.on("error", () => undefined);
        sock.on("close", () => sockets.delete(sock));
      }
      client.pipe(upstream).pipe(client);
    });
    relay.listen(0, "127.0.0.1");
    await once(relay, "listening");
    const channel = new H2Channel("127.0.0.1", (relay.address() as net.AddressInfo).port, { maxMessageBytes: 1 << 20 });
    try {
      const streams = [channel.openStream(PATH, bytes), channel.openStream(PATH, bytes)];
      const cs = streams.map(collect);
      streams.forEach((st) => st.write(Buffer.from("ping")));
      for (const c of cs) while (c.messages.length === 0) await sleep(1);
      for (const sock of sockets) sock.destroy();
      await Promise.all(cs.map((c) => c.done));
      for (const c of cs) {
        assert.equal(c.ends, 0);
        assert.equal(c.errors.length, 1);
        assert.equal(c.errors[0]!.code, grpc.status.UNAVAILABLE, `${c.errors[0]!.code} ${c.errors[0]!.details}`);
      }
      const again = channel.openStream(PATH, bytes);
      const a = collect(again);
      again.write(Buffer.from("back"));
      again.end();
      await a.done;
      assert.deepEqual([a.messages.map(String), a.errors.length], [["back"], 0]);
    } finally {
      channel.close();
      relay.close();
      for (const sock of sockets) sock.destroy();
      s.server.forceShutdown();
    }
  });

  test("a peer that goes silent (no answer, no close): the keepalive ping finds it, streams fail UNAVAILABLE", async () => {
    const s = await startServer();
    // A relay that can stop forwarding without closing anything: a frozen user function.
    let frozen = false;
    const sockets: net.Socket[] = [];
    const relay = net.createServer((client) => {
      const upstream = net.connect(s.port, "127.0.0.1");
      sockets.push(client, upstream);
      for (const sock of [client, upstream]) sock.on("error", () => undefined);
      client.on("data", (d) => frozen || upstream.write(d));
      upstream.on("data", (d) => frozen || client.write(d));
    });
    relay.listen(0, "127.0.0.1");
    await once(relay, "listening");
    const port = (relay.address() as net.AddressInfo).port;
    const channel = new H2Channel("127.0.0.1", port, { maxMessageBytes: 1 << 20, keepaliveMs: 100, keepaliveTimeoutMs: 300 });
    try {
      const stream = channel.openStream(PATH, bytes);
      const c = collect(stream);
      stream.write(Buffer.from("ping"));
      while (c.messages.length === 0) await sleep(1);
      await sleep(400); // pings are answered while the peer is alive
      assert.deepEqual([c.ends, c.errors.length], [0, 0]);
      frozen = true;
      await c.done;
      assert.equal(c.errors[0]?.code, grpc.status.UNAVAILABLE);
      assert.match(c.errors[0]!.details, /keepalive/);
    } finally {
      channel.close();
      relay.close();
      for (const sock of sockets) sock.destroy();
      s.server.forceShutdown();
    }
  });

  test("the channel closed: open streams may finish, new ones fail UNAVAILABLE", async () => {
    const s = await startServer();
    const channel = new H2Channel("127.0.0.1", s.port, { maxMessageBytes: 1 << 20 });
    try {
      const open = channel.openStream(PATH, bytes);
      const c = collect(open);
      open.write(Buffer.from("x"));
      while (c.messages.length === 0) await sleep(1);
      channel.close();
      const late = collect(channel.openStream(PATH, bytes));
      await late.done;
      assert.equal(late.errors[0]?.code, grpc.status.UNAVAILABLE);
      open.write(Buffer.from("y"));
      open.end();
      await c.done;
      assert.deepEqual([c.messages.map(String), c.ends, c.errors.length], [["x", "y"], 1, 0]);
    } finally {
      s.server.forceShutdown();
    }
  });
});

describe("H2Channel frame reading, against a raw HTTP/2 server that cuts the bytes as told", () => {
  /** Serves one response: the given byte pieces, each its own DATA frame, then the given trailers. */
  async function rawServer(pieces: Buffer[], trailers: http2.OutgoingHttpHeaders) {
    const server = http2.createServer();
    server.on("stream", (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers(trailers));
      void (async () => {
        for (const p of pieces) {
          stream.write(p);
          await sleep(1);
        }
        stream.end();
      })();
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return { server, port: (server.address() as net.AddressInfo).port };
  }

  async function receive(pieces: Buffer[], trailers: http2.OutgoingHttpHeaders = { "grpc-status": "0" }, maxMessageBytes = 1 << 20) {
    const { server, port } = await rawServer(pieces, trailers);
    const channel = new H2Channel("127.0.0.1", port, { maxMessageBytes });
    try {
      const stream = channel.openStream(PATH, bytes);
      const c = collect(stream);
      stream.end();
      await c.done;
      return c;
    } finally {
      channel.close();
      server.close();
    }
  }

  const messages = [Buffer.from("first"), Buffer.alloc(0), randomBytes(300), Buffer.from("last")];
  const wire = Buffer.concat(messages.map((m) => frame(m)));

  test("one byte per DATA frame (prefixes and bodies split everywhere)", async () => {
    const pieces = [...wire].map((b) => Buffer.from([b]));
    const c = await receive(pieces);
    assert.deepEqual(c.messages, messages);
    assert.equal(c.ends, 1);
  });

  test("all frames in one DATA frame, and cuts at random places", async () => {
    assert.deepEqual((await receive([wire])).messages, messages);
    for (let round = 0; round < 5; round++) {
      const cuts = [0, ...Array.from({ length: 6 }, () => Math.floor(Math.random() * wire.length)).sort((a, b) => a - b), wire.length];
      const pieces = cuts.slice(1).map((end, i) => wire.subarray(cuts[i], end)).filter((p) => p.length > 0);
      assert.deepEqual((await receive(pieces)).messages, messages, `cuts ${cuts.join(",")}`);
    }
  });

  test("a compressed frame is INTERNAL; a length over the limit is RESOURCE_EXHAUSTED before the body arrives", async () => {
    const compressed = frame(Buffer.from("zz"));
    compressed[0] = 1;
    assert.equal((await receive([compressed])).errors[0]?.code, grpc.status.INTERNAL);
    const big = Buffer.alloc(5);
    big.writeUInt32BE(2000, 1);
    const c = await receive([big], { "grpc-status": "0" }, 1000);
    assert.equal(c.errors[0]?.code, grpc.status.RESOURCE_EXHAUSTED);
  });

  test("the stream ending inside a message is an error, not a silent end", async () => {
    const c = await receive([wire.subarray(0, wire.length - 2)]);
    assert.equal(c.ends, 0);
    assert.equal(c.errors[0]?.code, grpc.status.INTERNAL);
  });

  test("a malformed grpc-message is passed through as it is", async () => {
    const c = await receive([], { "grpc-status": "13", "grpc-message": "100%zz done" });
    assert.deepEqual([c.errors[0]?.code, c.errors[0]?.details], [grpc.status.INTERNAL, "100%zz done"]);
  });
});
