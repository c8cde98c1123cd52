import { describe, expect, it } from "vitest";
import { SimFileSystem } from "../storage/sim-file-system.js";
import { putCommand as put, sleep, startSingleMember } from "./single-member.js";

describe("a snapshot that cannot be written", () => {
  // Found by review: the loop awaited the snapshot outside its error handling, so a failed snapshot
  // killed the loop with an unhandled rejection while the node still said it was running and ready,
  // and every later write hung until its deadline.
  it("fails the node visibly (not ready, writes refused at once) instead of killing its loop silently", async () => {
    const fs = new SimFileSystem();
    const driver = await startSingleMember(fs, { snapshotEntries: 5, retainEntries: 0 });
    try {
      // The snapshot's temporary file cannot be renamed into place (the WAL does not rename before it rotates).
      fs.failAfter(0, "ENOSPC", ["rename"]);
      const outcomes: string[] = [];
      for (let i = 0; i < 50 && outcomes.at(-1) !== "StoppedError"; i++) {
        outcomes.push(
          await driver.mutate(put(`k${i}`), AbortSignal.timeout(2_000)).then(
            () => "applied",
            (e: Error) => e.name,
          ),
        );
        // The simulated file system completes in microtasks; real I/O lets the event loop turn, and
        // the snapshot is encoded one chunk per turn.
        await sleep(1);
      }
      // Writes applied until the snapshot was due and a little longer (its file is written beside the
      // loop, so the failure shows a few writes later; one pending then may end as unknown outcome);
      // from then on the node refuses at once instead of letting writes hang until their deadline.
      expect(outcomes).toContain("applied");
      expect(outcomes.at(-1)).toBe("StoppedError");
      // Refused for the failure, not ended by the deadline (which would say "deadline passed").
      await expect(driver.mutate(put("after"), AbortSignal.timeout(2_000))).rejects.toThrow(/storage failed/);
      const health = driver.health();
      expect(health.ready).toBe(false);
      expect(health.reason).toMatch(/storage failed: .*ENOSPC/);
    } finally {
      await driver.stop().catch(() => {});
    }
  });
});
