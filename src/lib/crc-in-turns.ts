import { setImmediate } from "node:timers/promises";
import { crc32c } from "@node-rs/crc32";

/** How much the checksum covers between two turns of the event loop (a few milliseconds). */
const crcBytesPerTurn = 8 * 1024 * 1024;

/**
 * The CRC-32C of `data` continuing from `initial`, a slice per event-loop turn: over a 1 GB snapshot in
 * one go it stopped the loop for a third of a second.
 */
export async function crc32cInTurns(data: Uint8Array, initial = 0): Promise<number> {
  let crc = initial;
  for (let at = 0; at < data.byteLength; at += crcBytesPerTurn) {
    if (at > 0) await setImmediate();
    crc = crc32c(data.subarray(at, at + crcBytesPerTurn), crc);
  }
  return crc;
}
