import { crc32c } from "@node-rs/crc32";
import type { Snapshot } from "../core/types.js";
import { crc32cInTurns } from "../lib/crc-in-turns.js";
import { CorruptLogError } from "./errors.js";
import { PayloadError, confBytes, readConf, writeConf } from "./wal-codec.js";

/**
 * A snapshot file (little-endian):
 *
 *   offset  size  field
 *        0     8  magic "RKVSNAP1"
 *        8     4  crc32c of every byte after this field
 *       12     4  length M of the meta
 *       16     M  meta: index (float64), term (float64), membership (as in the WAL)
 *     16+M     …  the state machine's data, to the end of the file
 *
 * One checksum over the whole file: a snapshot is read whole, and any damage makes it unusable.
 */
const snapshotMagic = new TextEncoder().encode("RKVSNAP1");
const prefixBytes = 16;

export const snapshotCorruptHint =
  "Move this file out of the snap/ directory to fall back to the previous snapshot; the node then starts " +
  "only if its WAL still holds every entry after that one. Otherwise remove this member from the cluster, " +
  "wipe its data directory and add it back so that it receives a snapshot from the leader";

/**
 * The bytes that precede the data: the data itself is written separately, never copied. The checksum
 * runs over the data a slice per event-loop turn (crc32cInTurns).
 */
export async function encodeSnapshotPrefix(snapshot: Snapshot): Promise<Uint8Array> {
  const metaBytes = 16 + confBytes(snapshot.meta.conf);
  const prefix = new Uint8Array(prefixBytes + metaBytes);
  const view = new DataView(prefix.buffer);
  prefix.set(snapshotMagic, 0);
  view.setUint32(12, metaBytes, true);
  view.setFloat64(16, snapshot.meta.index, true);
  view.setFloat64(24, snapshot.meta.term, true);
  writeConf(view, 32, snapshot.meta.conf);
  view.setUint32(8, await crc32cInTurns(snapshot.data, crc32c(prefix.subarray(12))), true);
  return prefix;
}

/** Decodes and verifies a whole snapshot file. Throws CorruptLogError naming the file on any damage. */
export function decodeSnapshotFile(file: string, buf: Uint8Array): Snapshot {
  return decodeChecked(file, buf, (covered) => crc32c(covered));
}

/**
 * decodeSnapshotFile with the checksum computed a slice per event-loop turn: for a snapshot read back
 * while the node runs (to send it to a follower), where one pass over a large file would stall the loop.
 */
export async function decodeSnapshotFileInTurns(file: string, buf: Uint8Array): Promise<Snapshot> {
  const crc = buf.byteLength > 12 ? await crc32cInTurns(buf.subarray(12)) : 0;
  return decodeChecked(file, buf, () => crc);
}

function decodeChecked(file: string, buf: Uint8Array, crcOf: (covered: Uint8Array) => number): Snapshot {
  const fail = (offset: number, reason: string): never => {
    throw new CorruptLogError(file, offset, reason, snapshotCorruptHint);
  };
  if (buf.byteLength < prefixBytes + 16) fail(0, `snapshot file too short (${buf.byteLength} bytes)`);
  if (!snapshotMagic.every((byte, i) => buf[i] === byte)) fail(0, "not a snapshot file (bad magic)");
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (crcOf(buf.subarray(12)) !== view.getUint32(8, true)) fail(8, "snapshot checksum mismatch");
  const metaBytes = view.getUint32(12, true);
  if (metaBytes < 16 || metaBytes > buf.byteLength - prefixBytes) fail(12, "snapshot meta length out of range");
  const index = view.getFloat64(16, true);
  const term = view.getFloat64(24, true);
  if (![index, term].every((n) => Number.isSafeInteger(n) && n >= 0)) fail(16, "invalid snapshot index or term");
  let conf;
  try {
    conf = readConf(view, 32, metaBytes - 16);
  } catch (error) {
    if (!(error instanceof PayloadError)) throw error;
    return fail(32, `invalid snapshot membership: ${error.message}`);
  }
  return { meta: { index, term, conf }, data: buf.subarray(prefixBytes + metaBytes) };
}
