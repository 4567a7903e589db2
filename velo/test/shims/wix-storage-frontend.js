// Test shim for wix-storage-frontend: session storage in memory.
const store = new Map();
export const session = {
  getItem: (key) => (store.has(key) ? store.get(key) : null),
  setItem: (key, value) => store.set(key, String(value)),
  removeItem: (key) => store.delete(key),
};
