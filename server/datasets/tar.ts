/**
 * A small in-memory tar reader (ustar, GNU long names, pax path/size records)
 * and a minimal ustar writer used to build test archives.
 *
 * Dataset archives are read whole into memory and their members looked up by
 * name; nothing is ever extracted to a path taken from the archive, so member
 * names cannot escape the data directory.
 */
import { DatasetError } from './errors.ts';

const BLOCK = 512;

/** One member of a tar archive. */
export interface TarEntry {
  /** Path inside the archive, without a leading './'. */
  readonly name: string;
  readonly type: 'file' | 'directory' | 'other';
  /** The member's bytes: a view of the archive buffer (empty for non-files). */
  readonly data: Uint8Array;
}

/**
 * Lists the members of an uncompressed tar archive.
 * @param source file name used in error messages.
 * @throws DatasetError for a bad header checksum or a truncated archive.
 */
export function readTar(archive: Uint8Array, source: string): TarEntry[] {
  const entries: TarEntry[] = [];
  let offset = 0;
  let longName: string | undefined;
  let paxPath: string | undefined;
  let paxSize: number | undefined;
  while (offset + BLOCK <= archive.length) {
    const header = archive.subarray(offset, offset + BLOCK);
    // End of archive: a zero block (tar writes two; one is enough to stop).
    if (header.every((b) => b === 0)) return entries;
    verifyChecksum(header, source, offset);
    const typeFlag = String.fromCharCode(header[156] as number);
    const size = paxSize ?? parseNumber(header.subarray(124, 136), source, offset);
    const dataStart = offset + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > archive.length) {
      throw new DatasetError(
        `${source}: truncated tar archive: member at byte ${offset} needs ${size} bytes, only ${archive.length - dataStart} remain`,
      );
    }
    const data = archive.subarray(dataStart, dataEnd);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;
    if (typeFlag === 'L') {
      // GNU long name: the data is the next member's name.
      longName = cString(data);
      continue;
    }
    if (typeFlag === 'x') {
      ({ path: paxPath, size: paxSize } = parsePax(data));
      continue;
    }
    if (typeFlag === 'g') continue; // global pax header: nothing we need
    const prefix = cString(header.subarray(345, 500));
    const plain = cString(header.subarray(0, 100));
    const name = normalize(paxPath ?? longName ?? (prefix === '' ? plain : `${prefix}/${plain}`));
    longName = paxPath = paxSize = undefined;
    const type = typeFlag === '0' || typeFlag === '\0' || typeFlag === '7' ? 'file' : typeFlag === '5' ? 'directory' : 'other';
    entries.push({ name, type, data: type === 'file' ? data : data.subarray(0, 0) });
  }
  if (offset !== archive.length) {
    throw new DatasetError(`${source}: truncated tar archive (${archive.length - offset} stray bytes at the end)`);
  }
  // Some writers omit the end blocks; accept an archive that ends on a member boundary.
  return entries;
}

/**
 * Writes a ustar archive of regular files and directories (names up to 100
 * bytes). Used by tests to build archives in the official dataset layouts.
 */
export function writeTar(members: readonly { name: string; data?: Uint8Array }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const member of members) {
    const isDir = member.data === undefined;
    const data = member.data ?? new Uint8Array(0);
    const header = new Uint8Array(BLOCK);
    const ascii = (text: string, at: number, length: number): void => {
      const bytes = new TextEncoder().encode(text);
      if (bytes.length > length) throw new RangeError(`tar field too long: ${text}`);
      header.set(bytes, at);
    };
    ascii(member.name, 0, 100);
    ascii(isDir ? '0000755\0' : '0000644\0', 100, 8);
    ascii('0000000\0', 108, 8);
    ascii('0000000\0', 116, 8);
    ascii(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 12);
    ascii('00000000000\0', 136, 12);
    ascii(isDir ? '5' : '0', 156, 1);
    ascii('ustar\0', 257, 6);
    ascii('00', 263, 2);
    header.fill(0x20, 148, 156);
    const sum = header.reduce((a, b) => a + b, 0);
    ascii(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    parts.push(header, data, new Uint8Array((BLOCK - (data.length % BLOCK)) % BLOCK));
  }
  parts.push(new Uint8Array(2 * BLOCK));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function verifyChecksum(header: Uint8Array, source: string, offset: number): void {
  const stored = parseNumber(header.subarray(148, 156), source, offset);
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    // The checksum field itself counts as eight spaces.
    const b = i >= 148 && i < 156 ? 0x20 : (header[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  if (stored !== unsigned && stored !== signed) {
    throw new DatasetError(`${source}: not a tar archive or corrupt (bad header checksum at byte ${offset})`);
  }
}

/** Octal ASCII, or GNU base-256 when the high bit of the first byte is set. */
function parseNumber(field: Uint8Array, source: string, offset: number): number {
  if (((field[0] as number) & 0x80) !== 0) {
    let value = (field[0] as number) & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] as number);
    return value;
  }
  const text = cString(field).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) {
    throw new DatasetError(`${source}: not a tar archive or corrupt (bad number '${text}' in header at byte ${offset})`);
  }
  return parseInt(text, 8);
}

/** Records are "<length> <key>=<value>\n"; only path and size matter here. */
function parsePax(data: Uint8Array): { path?: string; size?: number } {
  const text = new TextDecoder().decode(data);
  const out: { path?: string; size?: number } = {};
  for (const line of text.split('\n')) {
    const match = /^\d+ ([^=]+)=(.*)$/.exec(line);
    if (match === null) continue;
    if (match[1] === 'path') out.path = match[2];
    if (match[1] === 'size' && /^\d+$/.test(match[2] ?? '')) out.size = Number(match[2]);
  }
  return out;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

function normalize(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}
