import { populationStoreContract } from './contract.ts';
import { MemoryStore } from './memory-store.ts';

populationStoreContract('MemoryStore', () => ({ store: new MemoryStore() }));
