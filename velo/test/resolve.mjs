const SHIMS = new Set([
  'wix-fetch',
  'wix-web-module',
  'wix-secrets-backend.v2',
  'wix-auth',
  'wix-chat-backend',
  'wix-members-backend',
  'wix-storage-frontend',
  'wix-window-frontend',
  'wix-data',
]);

export async function resolve(specifier, context, next) {
  if (SHIMS.has(specifier)) {
    return { url: new URL(`./shims/${specifier}.js`, import.meta.url).href, shortCircuit: true };
  }
  if (specifier.startsWith('backend/') || specifier.startsWith('public/')) {
    const file = specifier.endsWith('.js') ? specifier : `${specifier}.js`;
    return { url: new URL(`../${file}`, import.meta.url).href, shortCircuit: true };
  }
  return next(specifier, context);
}
