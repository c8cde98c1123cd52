import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { CommandSchema } from "../../gen/raftkv/v1/command_pb.js";
import { Driver } from "../../src/driver/node.js";
import { createKvStore } from "../../src/kv/index.js";
import { silentLogger } from "../../src/lib/logger.js";
import { openStorage } from "../../src/storage/index.js";
import { SimFileSystem } from "../storage/sim-file-system.js";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const put = (key: string, bytes: number) =>
  create(CommandSchema, { op: { case: "put", value: { key: new TextEncoder().encode(key), value: new Uint8Array(bytes) } } });

/** A single-member driver on a simulated disk: the snapshot triggers need no peers. */
async function start(snapshotEntries: number, snapshotBytes: number | undefined): Promise<Driver> {
  const fs = new SimFileSystem();
  const storage = await openStorage({
    dir: "/d",
    fs,
    segmentBytes: 1 << 20,
    initialConf: { voters: [1], learners: [] },
    logger: silentLogger,
  });
  const driver = new Driver({
    id: 1,
    members: [{ id: 1, name: "n1", peerUrl: "", clientUrl: "", learner: false }],
    storage,
    stateMachine: createKvStore({}),
    transport: { send: () => {}, stats: () => new Map(), close: async () => {} },
    logger: silentLogger,
    tickMs: 2,
    electionTicks: 5,
    heartbeatTicks: 1,
    msgBytesMax: 1 << 20,
    proposalsMax: 100,
    readsMax: 100,
    snapshotEntries,
    ...(snapshotBytes === undefined ? {} : { snapshotBytes }),
    retainEntries: 0,
    seed: 1,
  });
  driver.start();
  for (let i = 0; i < 200 && driver.status().role !== "leader"; i++) await sleep(5);
  expect(driver.status().role).toBe("leader");
  return driver;
}

async function writeLarge(driver: Driver, count: number): Promise<number> {
  for (let i = 0; i < count; i++) {
    await driver.mutate(put(`k${i}`, 64 * 1024), AbortSignal.timeout(2_000));
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
