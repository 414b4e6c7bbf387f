#!/usr/bin/env node
// Entry point of `npx ccfs-export`: runs the TypeScript CLI through tsx, no build step needed.
import { register } from 'tsx/esm/api';

register();
await import('../cli/index.ts');
