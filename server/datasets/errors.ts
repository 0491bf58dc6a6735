/**
 * The one error type of the dataset code. Its message is meant for a person
 * at a terminal: what failed, which file or URL, and what to do next.
 */
export class DatasetError extends Error {
  override readonly name = 'DatasetError';
}
