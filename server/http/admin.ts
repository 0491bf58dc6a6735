/** The admin token: made on first start, kept in the data directory, compared in constant time. */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NextFunction, Request, Response } from 'express';

export function loadOrCreateAdminToken(dataDir: string): string {
  const path = join(dataDir, 'admin-token');
  if (existsSync(path)) {
    const token = readFileSync(path, 'utf8').trim();
    if (/^[0-9a-f]{64}$/.test(token)) return token;
  }
  const token = randomBytes(32).toString('hex');
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  return token;
}

/** Express middleware: 401 without `Authorization: Bearer <token>`, 403 with a wrong one. */
export function requireAdmin(token: string) {
  const expected = Buffer.from(token);
  return (req: Request, res: Response, next: NextFunction): void => {
    const header = req.get('authorization') ?? '';
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    if (match === null) {
      res.status(401).json({ error: 'admin-token-required', message: 'send Authorization: Bearer <admin token> (printed at start, kept in <data-dir>/admin-token)' });
      return;
    }
    const given = Buffer.from(match[1] as string);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      res.status(403).json({ error: 'bad-admin-token', message: 'wrong admin token' });
      return;
    }
    next();
  };
}
