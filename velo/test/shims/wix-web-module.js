// Test shim for wix-web-module: webMethod returns the function, remembering its permission.
export const Permissions = Object.freeze({ Anyone: 'Anyone', SiteMember: 'SiteMember', Admin: 'Admin' });
export function webMethod(permission, fn) {
  const method = (...args) => fn(...args);
  method.permission = permission;
  return method;
}
