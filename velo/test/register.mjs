// Resolves Velo's module names in Node: `backend/x` and `public/x` to the kit's files, and the
// wix-* modules to the shims in test/shims. Loaded with `node --import ./test/register.mjs`.
import { register } from 'node:module';

register('./resolve.mjs', import.meta.url);
