import { storeContract } from "../contract.js";
import { MemoryStore } from "./memory-store.js";

storeContract("memory", async () => new MemoryStore());
