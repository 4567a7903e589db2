// Test shim for wix-auth: elevate(fn) runs fn with elevated permissions; here, as is.
export const elevate = (fn) => (...args) => fn(...args);
