// Test shim for wix-secrets-backend.v2: secrets come from globalThis.__wixSecrets.
export const secrets = {
  async getSecretValue(name) {
    const value = globalThis.__wixSecrets?.[name];
    if (value === undefined) throw new Error(`secret ${name} not found`);
    return { value };
  },
};
