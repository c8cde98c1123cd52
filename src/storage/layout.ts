import { join } from "node:path";

/**
 * The data directory:
 *
 *   <dir>/wal/<seq>.wal            WAL segments, seq = 16 hex digits, contiguous from the oldest kept
 *   <dir>/wal/<seq>.wal.tmp        the next segment being zero-filled (removed on start)
 *   <dir>/snap/<index>-<term>.snap snapshot files, 16 hex digits each
 *   <dir>/snap/<name>.snap.tmp     a snapshot being written (removed on start)
 *
 * Fixed-width hex names sort in numeric order and say what a file holds without opening it.
 */
export const walDirName = "wal";
export const snapDirName = "snap";
export const tmpSuffix = ".tmp";

const hexDigits = 16;
const segmentPattern = /^([0-9a-f]{16})\.wal$/;
const snapshotPattern = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;

export function walDir(dir: string): string {
  return join(dir, walDirName);
}

export function snapDir(dir: string): string {
  return join(dir, snapDirName);
}

export function segmentName(seq: number): string {
  return `${hex(seq)}.wal`;
}

export function parseSegmentName(name: string): number | undefined {
  const match = segmentPattern.exec(name);
  return match?.[1] === undefined ? undefined : parseHex(match[1]);
}

export function snapshotName(index: number, term: number): string {
  return `${hex(index)}-${hex(term)}.snap`;
}

export function parseSnapshotName(name: string): { index: number; term: number } | undefined {
  const match = snapshotPattern.exec(name);
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  const index = parseHex(match[1]);
  const term = parseHex(match[2]);
  return index === undefined || term === undefined ? undefined : { index, term };
}

function hex(n: number): string {
  return n.toString(16).padStart(hexDigits, "0");
}

/** Parses a hex name field; undefined beyond 2^53, which no index, term or sequence reaches. */
function parseHex(digits: string): number | undefined {
  const n = Number.parseInt(digits, 16);
  return Number.isSafeInteger(n) ? n : undefined;
}
