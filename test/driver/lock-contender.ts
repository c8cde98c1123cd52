// A process for data-dir-lock.test.ts: waits until the given wall-clock instant (so that every
// contender starts together), tries to lock the directory, prints the outcome, and holds the lock a
// while so that a later contender cannot take it legitimately.
import { setTimeout as sleep } from "node:timers/promises";
import { lockDataDir } from "../../src/driver/data-dir-lock.js";

const [dir, startAt] = process.argv.slice(2);
await sleep(Math.max(0, Number(startAt) - Date.now()));
try {
  const release = await lockDataDir(dir as string);
  process.stdout.write("locked\n");
  await sleep(1_500);
  await release();
} catch (error) {
  process.stdout.write(`refused: ${(error as Error).name}\n`);
}
