// A tiny command-line client of the cart through the proxy, over plain gRPC:
//   npx tsx examples/shopping-cart/src/client.ts add alice p1 Apple 2
//   npx tsx examples/shopping-cart/src/client.ts remove alice p1
//   npx tsx examples/shopping-cart/src/client.ts get alice
// The proxy's address comes from PROXY (default 127.0.0.1:9000, or 127.0.0.1:$HTTP_PORT).
import * as grpc from "@grpc/grpc-js";
import { create, createRegistry, fromBinary, toBinary, toJsonString, type DescMethod } from "@bufbuild/protobuf";
import { ShoppingCart, file_com_example_shoppingcart_shoppingcart } from "./gen/com/example/shoppingcart/shoppingcart_pb.js";

const address = process.env.PROXY ?? `127.0.0.1:${process.env.HTTP_PORT ?? 9000}`;
const [verb, userId, productId, name, quantity] = process.argv.slice(2);
const usage = "usage: client.ts add USER PRODUCT NAME QUANTITY | remove USER PRODUCT | get USER";

const calls: Record<string, () => [DescMethod, Record<string, unknown>]> = {
  add: () => [ShoppingCart.method.addItem, { userId, productId, name, quantity: Number(quantity ?? 1) }],
  remove: () => [ShoppingCart.method.removeItem, { userId, productId }],
  get: () => [ShoppingCart.method.getCart, { userId }],
};
const call = verb !== undefined && userId !== undefined ? calls[verb] : undefined;
if (!call) {
  console.error(usage);
  process.exit(2);
}
const [method, init] = call();
const client = new grpc.Client(address, grpc.credentials.createInsecure());
client.makeUnaryRequest(
  `/${ShoppingCart.typeName}/${method.name}`,
  (message: Record<string, unknown>) => Buffer.from(toBinary(method.input, create(method.input, message))),
  (b: Buffer) => fromBinary(method.output, b),
  init,
  (err, reply) => {
    client.close();
    if (err) {
      console.error(`${grpc.status[err.code]}: ${err.details}`);
      process.exit(1);
    }
    const registry = createRegistry(file_com_example_shoppingcart_shoppingcart);
    console.log(toJsonString(method.output, reply!, { registry }));
  },
);
