// Serves the TCK's model user function for a proxy: listens on PORT (default 8080), HOST (default 127.0.0.1).
import { serve } from "@cloudstate-ts/sdk";
import { modelEntities } from "./index.js";

await serve({ entities: modelEntities(), handleSignals: true });
