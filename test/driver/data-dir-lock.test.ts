import { spawn } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DataDirLockedError, lockDataDir } from "../../src/driver/index.js";

let dir = "";
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the data directory lock", () => {
  it("refuses a directory held by a running process and names it", async () => {
    dir = await mkdtemp(join(tmpdir(), "raftkv-lock-"));
    const holder = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: "ignore" });
    try {
      await writeFile(join(dir, "LOCK"), `${holder.pid}\n`);
      const error = await lockDataDir(dir).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DataDirLockedError);
      expect((error as Error).message).toContain(`process ${holder.pid}`);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it.each([
    ["a free directory", false],
    ["a directory whose lock a killed process left", true],
  ])(
    "lets exactly one of several processes starting at once take %s",
    async (_name, stale) => {
      // Found by review: LOCK was created empty and the pid written after, so a process looking in
      // between took it as stale; and two processes could both take over one stale lock.
      dir = await mkdtemp(join(tmpdir(), "raftkv-lock-"));
      if (stale) {
        const gone = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
        await new Promise((resolve) => gone.once("exit", resolve));
        await writeFile(join(dir, "LOCK"), `${gone.pid}\n`);
      }
      const startAt = Date.now() + 3_000;
      const contenders = Array.from(
        { length: 5 },
        () =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(
              process.execPath,
              ["--import", "tsx", join(import.meta.dirname, "lock-contender.ts"), dir, String(startAt)],
              {
                stdio: ["ignore", "pipe", "inherit"],
              },
            );
            let out = "";
            child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
            child.once("error", reject);
            child.once("exit", () => resolve(out.trim()));
          }),
      );
      const outcomes = await Promise.all(contenders);
      expect(
        outcomes.filter((o) => o === "locked"),
        outcomes.join(", "),
      ).toHaveLength(1);
      expect(
        outcomes.filter((o) => o === "refused: DataDirLockedError"),
        outcomes.join(", "),
      ).toHaveLength(4);
      expect((await readdir(dir)).filter((name) => name.startsWith("LOCK"))).toEqual([]);
    },
    30_000,
  );

  it("takes over the lock of a process that was killed, and releases it", async () => {
    dir = await mkdtemp(join(tmpdir(), "raftkv-lock-"));
    const gone = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    await new Promise((resolve) => gone.once("exit", resolve));
    await writeFile(join(dir, "LOCK"), `${gone.pid}\n`);
    const release = await lockDataDir(dir);
    expect((await readFile(join(dir, "LOCK"), "utf8")).trim()).toBe(String(process.pid));
    await release();
    await expect(readFile(join(dir, "LOCK"), "utf8")).rejects.toThrow(/ENOENT/);
  });
});
