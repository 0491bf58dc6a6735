/** The HTTP client of the operator commands: server URL and admin token from flags, environment or the data directory. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AdminTarget {
  readonly server: string;
  readonly token: string | null;
}

export function adminTarget(values: { server?: string; token?: string; 'data-dir'?: string }): AdminTarget {
  const server = (values.server ?? process.env.PETRI_SERVER ?? 'http://localhost:3000').replace(/\/$/, '');
  let token = values.token ?? process.env.PETRI_ADMIN_TOKEN ?? null;
  if (token === null) {
    const path = join(values['data-dir'] ?? process.env.PETRI_DATA_DIR ?? './petri-data', 'admin-token');
    if (existsSync(path)) token = readFileSync(path, 'utf8').trim();
  }
  return { server, token };
}

/** Calls the API; throws an Error with the server's message on failure. */
export async function api<T>(target: AdminTarget, method: 'GET' | 'POST', path: string, body?: unknown, admin = false): Promise<T> {
  if (admin && target.token === null) {
    throw new Error('this needs the admin token: pass --token T, set PETRI_ADMIN_TOKEN, or run where <data-dir>/admin-token is (--data-dir DIR)');
  }
  let response: Response;
  try {
    response = await fetch(`${target.server}${path}`, {
      method,
      headers: {
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(admin && target.token ? { authorization: `Bearer ${target.token}` } : {}),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new Error(`cannot reach ${target.server} (${err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err)}); is the server running? (--server URL)`);
  }
  const text = await response.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: reported below
  }
  if (!response.ok) {
    const message = typeof json === 'object' && json !== null && 'message' in json ? String((json as { message: unknown }).message) : text.slice(0, 200);
    throw new Error(`${method} ${path}: HTTP ${response.status}: ${message}`);
  }
  return json as T;
}
