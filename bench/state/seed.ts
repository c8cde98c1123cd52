import { createHash } from "node:crypto";
import { setImmediate as nextTurn } from "node:timers/promises";
import { createKvStore, encodeCommand, kvSnapshotFormatVersion } from "../../src/kv/index.js";
import { BackupFileWriter } from "../../src/storage/index.js";
import { stateKey } from "./load.js";

/**
 * --fill restore: instead of a million Puts through the cluster, the state is built here in a KvStore
 * (the nodes' own state machine, one Put command per key) and saved as a backup file, the format
 * `raftkv snapshot save` writes; Cluster.restore then seeds every member from it with `raftkv snapshot
 * restore` (docs/operations.md, "Backup and disaster recovery"), as an operator seeds a new cluster.
 */
export async function writeBackup(file: string, keys: number, value: Uint8Array): Promise<{ dataBytes: number }> {
  const store = createKvStore();
  for (let i = 0; i < keys; i++) {
    store.apply(i + 1, encodeCommand({ op: { case: "put", value: { key: stateKey(i), value } } }));
    if (i % 10_000 === 0) await nextTurn(); // Ctrl-C stays prompt
  }
  const writer = await BackupFileWriter.create(file, {
    revision: store.revision,
    appliedIndex: store.appliedIndex,
    raftTerm: 1,
    memberId: 1,
    keyCount: store.keyCount,
    kvFormatVersion: kvSnapshotFormatVersion,
    createdAtMs: Date.now(),
  });
  const hash = createHash("sha256");
  let dataBytes = 0;
  try {
    for (const chunk of store.snapshotChunks()) {
      hash.update(chunk);
      dataBytes += chunk.byteLength;
      await writer.write(chunk);
    }
    await writer.finish({ dataBytes, sha256: hash.digest("hex") });
  } catch (error) {
    await writer.discard().catch(() => undefined);
    throw error;
  }
  return { dataBytes };
}
