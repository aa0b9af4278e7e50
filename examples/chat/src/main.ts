// Runs the chat room user function: listens on PORT (default 8080) for the proxy.
import { serve } from "@cloudstate-ts/sdk";
import { chatRoom } from "./room.js";

await serve({ entities: [chatRoom()], handleSignals: true });
