// The CLI is used through its bin (`cloudstate`); these helpers are exported for tests.
export { configInput, type ProxyFlags } from "./flags.js";
