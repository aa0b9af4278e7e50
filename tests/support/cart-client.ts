// A plain grpc-js client of the shopping cart, as any gRPC client would call it through the proxy.
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { EmptySchema } from "@bufbuild/protobuf/wkt";
import {
  AddLineItemSchema,
  CartSchema,
  GetShoppingCartSchema,
  RemoveLineItemSchema,
  type Cart,
} from "../../examples/shopping-cart/src/gen/com/example/shoppingcart/shoppingcart_pb.js";

const SERVICE = "/com.example.shoppingcart.ShoppingCart";

export class CartClient {
  readonly raw: grpc.Client;

  constructor(port: number) {
    this.raw = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  }

  addItem(init: MessageInitShape<typeof AddLineItemSchema>, deadlineMs = 10_000): Promise<void> {
    return this.call("AddItem", AddLineItemSchema, EmptySchema, init, deadlineMs).then(() => undefined);
  }

  removeItem(init: MessageInitShape<typeof RemoveLineItemSchema>, deadlineMs = 10_000): Promise<void> {
    return this.call("RemoveItem", RemoveLineItemSchema, EmptySchema, init, deadlineMs).then(() => undefined);
  }

  getCart(userId: string, deadlineMs = 10_000): Promise<Cart> {
    return this.call("GetCart", GetShoppingCartSchema, CartSchema, { userId }, deadlineMs);
  }

  call<I extends DescMessage, O extends DescMessage>(
    method: string,
    input: I,
    output: O,
    init: MessageInitShape<I>,
    deadlineMs = 10_000,
  ): Promise<MessageShape<O>> {
    return this.callBytes(`${SERVICE}/${method}`, Buffer.from(toBinary(input, create(input, init))), deadlineMs).then(
      (bytes) => fromBinary(output, bytes),
    );
  }

  /** Sends raw bytes to any path: for malformed payloads and unknown methods. */
  callBytes(path: string, bytes: Buffer, deadlineMs = 10_000): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.raw.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        bytes,
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  close(): void {
    this.raw.close();
  }
}

/** Asserts that a promise rejects with a gRPC status (and optionally a message pattern). */
export async function rejectsWith(promise: Promise<unknown>, code: grpc.status, message?: RegExp): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (e) {
    const err = e as grpc.ServiceError;
    if (err.code !== code) {
      throw new Error(`expected status ${grpc.status[code]}, got ${grpc.status[err.code] ?? err.code}: ${err.details ?? err.message}`);
    }
    if (message && !message.test(err.details)) throw new Error(`expected message ${message}, got "${err.details}"`);
    return err;
  }
  throw new Error(`expected status ${grpc.status[code]}, but the call succeeded`);
}
