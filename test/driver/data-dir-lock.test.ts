import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
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
