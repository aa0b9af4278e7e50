// The floor: ShoppingCart/AddItem on a bare grpc-js server, carts in a Map, no proxy, no user
// function, no store. What grpc-js alone does on this machine; the proxy scenarios are compared
// with it. Run as a process (`node --import tsx bench/src/floor.ts`, env PORT, HOST) so that, as
// in the proxy scenarios, server and load generator do not share an event loop.
import * as grpc from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { pathToFileURL } from "node:url";
import { AddLineItemSchema } from "../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";
import { ADD_ITEM_PATH } from "./load.js";

export interface FloorServer {
  readonly port: number;
  /** Carts by user id: product id → quantity. */
  readonly carts: Map<string, Map<string, number>>;
  close(): Promise<void>;
}

const EMPTY = Buffer.alloc(0); // google.protobuf.Empty encodes to no bytes

export async function startFloorServer(port = 0, host = "127.0.0.1"): Promise<FloorServer> {
  const carts = new Map<string, Map<string, number>>();
  const server = new grpc.Server();
  const passThrough = (b: Buffer): Buffer => b;
  server.addService(
    {
      AddItem: {
        path: ADD_ITEM_PATH,
        requestStream: false,
        responseStream: false,
        requestSerialize: passThrough,
        requestDeserialize: passThrough,
        responseSerialize: passThrough,
        responseDeserialize: passThrough,
        originalName: "AddItem",
      },
    },
    {
      AddItem: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        let item;
        try {
          item = fromBinary(AddLineItemSchema, call.request);
        } catch (e) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: `malformed AddLineItem: ${(e as Error).message}` });
          return;
        }
        if (item.userId === "") {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: "user_id is required" });
          return;
        }
        if (item.quantity <= 0) {
          callback({ code: grpc.status.UNKNOWN, details: `Cannot add negative quantity of ${item.productId}` });
          return;
        }
        let cart = carts.get(item.userId);
        if (cart === undefined) carts.set(item.userId, (cart = new Map()));
        cart.set(item.productId, (cart.get(item.productId) ?? 0) + item.quantity);
        callback(null, EMPTY);
      },
    },
  );
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port: bound,
    carts,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}

// Run as a process: listens on HOST:PORT (default 127.0.0.1, a free port) and prints the port.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const floor = await startFloorServer(Number(process.env.PORT ?? 0), process.env.HOST ?? "127.0.0.1");
  process.stderr.write(`floor server listening on 127.0.0.1:${floor.port}\n`);
  const stop = () => {
    void floor.close().then(() => process.exit(0));
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
