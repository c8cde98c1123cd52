import type { Entry, EntryType } from "../../src/core/types.js";
import type { Logger, LogLevel } from "../../src/lib/logger.js";

/** An entry whose data is derived from (index, term, salt), so any copy can be checked byte for byte. */
export function makeEntry(index: number, term: number, bytes: number, salt = 0, type: EntryType = "normal"): Entry {
  return { index, term, type, data: entryData(index, term, bytes, salt) };
}

export function entryData(index: number, term: number, bytes: number, salt = 0): Uint8Array {
  const data = new Uint8Array(bytes);
  let x = (index * 2654435761 + term * 40503 + salt * 97 + 1) >>> 0;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    data[i] = x >>> 24;
  }
  return data;
}

export function makeEntries(from: number, to: number, term: number, bytes: number, salt = 0): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push(makeEntry(i, term, bytes, salt));
  return out;
}

export interface LogLine {
  readonly level: LogLevel;
  readonly msg: string;
  readonly fields: object | undefined;
}

/** A logger that keeps what it is told, for tests that check repairs are reported. */
export function memoryLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLevel) =>
    (msg: string, fields?: object): void =>
      void lines.push({ level, msg, fields });
  return { lines, logger: { info: at("info"), warn: at("warn"), error: at("error") } };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}

/** Lets every pending microtask and I/O callback run. */
export async function settle(turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
}
