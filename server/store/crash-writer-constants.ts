/** Shared by crash-writer.ts and its test (which must not import the writer: it runs on import). */
export const CRASH_EXPERIMENT = 'crash';
export const CRASH_POPULATION = 5;
