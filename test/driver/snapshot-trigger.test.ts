import { describe, expect, it } from "vitest";
import type { Driver } from "../../src/driver/node.js";
import { SimFileSystem } from "../storage/sim-file-system.js";
import { putCommand, sleep, startSingleMember } from "./single-member.js";

const start = (snapshotEntries: number, snapshotBytes: number | undefined): Promise<Driver> =>
  startSingleMember(new SimFileSystem(), { snapshotEntries, retainEntries: 0, ...(snapshotBytes === undefined ? {} : { snapshotBytes }) });

async function writeLarge(driver: Driver, count: number): Promise<number> {
  for (let i = 0; i < count; i++) {
    await driver.mutate(putCommand(`k${i}`, 64 * 1024), AbortSignal.timeout(2_000));
    // The simulated disk completes in microtasks; a snapshot is encoded one chunk per event-loop turn.
    await sleep(1);
  }
  for (let i = 0; i < 100 && driver.status().snapshotIndex === 0; i++) await sleep(5);
  return driver.status().snapshotIndex;
}

describe("snapshot triggers", () => {
  it("takes a snapshot once the applied commands carry --snapshot-bytes, long before --snapshot-entries", async () => {
    const driver = await start(10_000, 256 * 1024);
    try {
      // Five 64 KiB values pass 256 KiB; the entry count (10,000) is nowhere near.
      expect(await writeLarge(driver, 5)).toBeGreaterThan(0);
    } finally {
      await driver.stop();
    }
  });

  it("without a byte trigger the same writes take no snapshot", async () => {
    const driver = await start(10_000, undefined);
    try {
      expect(await writeLarge(driver, 5)).toBe(0);
    } finally {
      await driver.stop();
    }
  });
});
