import { create } from "@bufbuild/protobuf";
import { CommandSchema, type Command } from "../../gen/raftkv/v1/command_pb.js";
import { Driver, type DriverOptions } from "../../src/driver/node.js";
import { createKvStore } from "../../src/kv/index.js";
import { silentLogger } from "../../src/lib/logger.js";
import { openStorage } from "../../src/storage/index.js";
import type { SimFileSystem } from "../storage/sim-file-system.js";

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export const putCommand = (key: string, valueBytes = 1): Command =>
  create(CommandSchema, { op: { case: "put", value: { key: new TextEncoder().encode(key), value: new Uint8Array(valueBytes) } } });

/**
 * A one-member Driver on a simulated disk, started and leading: what the snapshot tests need, which
 * exercise the driver's own loop and storage and no peers. `options` overrides the snapshot settings.
 */
export async function startSingleMember(
  fs: SimFileSystem,
  options: Pick<DriverOptions, "snapshotEntries" | "retainEntries"> & Partial<Pick<DriverOptions, "snapshotBytes">>,
): Promise<Driver> {
  const storage = await openStorage({
    dir: "/d",
    fs,
    segmentBytes: 1 << 20,
    initialConf: { voters: [1], learners: [] },
    logger: silentLogger,
  });
  await sleep(20); // the background preparation of the next segment settles
  const driver = new Driver({
    id: 1,
    members: [{ id: 1, name: "n1", peerUrl: "", clientUrl: "", learner: false }],
    storage,
    stateMachine: createKvStore({}),
    transport: { send: () => {}, setPeers: () => {}, stats: () => new Map(), close: async () => {} },
    logger: silentLogger,
    tickMs: 2,
    electionTicks: 5,
    heartbeatTicks: 1,
    msgBytesMax: 1 << 20,
    proposalsMax: 100,
    readsMax: 100,
    seed: 1,
    ...options,
  });
  driver.start();
  for (let i = 0; i < 200 && driver.status().role !== "leader"; i++) await sleep(5);
  if (driver.status().role !== "leader") throw new Error("the single member did not become leader");
  return driver;
}
