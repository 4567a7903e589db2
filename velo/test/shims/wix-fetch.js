// Test shim: Velo's wix-fetch is node-fetch-like; Node's own fetch has the same surface we use.
export const fetch = (...args) => globalThis.fetch(...args);
