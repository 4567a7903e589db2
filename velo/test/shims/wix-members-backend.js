// Test shim for wix-members-backend: the logged-in member is globalThis.__wixMember (or none).
export const currentMember = {
  async getMember() {
    return globalThis.__wixMember ?? null;
  },
};
