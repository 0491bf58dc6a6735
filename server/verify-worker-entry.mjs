// Worker-thread entry: loads the TypeScript verification worker through tsx.
import { register } from 'tsx/esm/api';

register();
await import('./verify-worker.ts');
