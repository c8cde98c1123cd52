import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import {
  BackupHeaderSchema,
  BackupTrailerSchema,
  SnapshotResponseSchema,
  type MaintenanceService,
  type SnapshotResponse,
} from "../../gen/raftkv/v1/maintenance_pb.js";
import type { KvNode } from "../driver/types.js";
import { kvSnapshotFormatVersion, type KvStore } from "../kv/index.js";
import type { Logger } from "../lib/logger.js";
import { failRequest } from "./handler-errors.js";
import { requestSignal } from "./request-context.js";

/** What a backup reads of the state machine: a consistent capture and the numbers that describe it. */
export type SnapshotSource = Pick<KvStore, "snapshotChunks" | "revision" | "appliedIndex" | "keyCount">;

export interface MaintenanceServiceOptions {
  readonly node: KvNode;
  readonly store: SnapshotSource;
  readonly logger: Logger;
  /** The deadline of the read barrier when the client set none; the transfer itself has none. */
  readonly requestTimeoutMs: number;
}

/**
 * MaintenanceService (proto/raftkv/v1/maintenance.proto).
 *
 * Snapshot: a linearizable read barrier first, so the capture holds every write acknowledged before
 * the call (on a follower too: the leader confirms the commit index and this node waits until it has
 * applied it). The state is then captured in the same synchronous step as the numbers of the header
 * (`snapshotChunks` copies references to immutable records), so later writes change neither. The chunks
 * are encoded lazily, one per message: connect-node pulls the next message only once the previous one
 * is written to the HTTP/2 stream, so a slow client slows the encoding down instead of piling encoded
 * bytes up in memory, and no more than one chunk of the encoding exists at a time. Each pause for the
 * client is an event-loop turn, so a large state does not stall the node's loop either.
 */
export function createMaintenanceServiceImpl(options: MaintenanceServiceOptions): ServiceImpl<typeof MaintenanceService> {
  const { node, store, logger } = options;
  return {
    async *snapshot(_request, context): AsyncGenerator<SnapshotResponse> {
      const barrierSignal = requestSignal(context, options.requestTimeoutMs);
      try {
        await node.readBarrier(barrierSignal);
      } catch (error) {
        throw failRequest(error, "Snapshot", { signal: barrierSignal }, logger);
      }
      const chunks = store.snapshotChunks();
      // Closed however the stream ends (a client that goes away after the header included): until then
      // the store keeps the old record of every key that changes.
      try {
        const header = create(BackupHeaderSchema, {
          revision: BigInt(store.revision),
          appliedIndex: BigInt(store.appliedIndex),
          raftTerm: BigInt(node.status().term),
          memberId: BigInt(node.id),
          keyCount: BigInt(store.keyCount),
          kvFormatVersion: kvSnapshotFormatVersion,
        });
        yield create(SnapshotResponseSchema, { kind: { case: "header", value: header } });
        const hash = createHash("sha256");
        let totalBytes = 0;
        for (const chunk of chunks) {
          // A client that went away ends the encoding here rather than at the next failed write.
          context.signal.throwIfAborted();
          hash.update(chunk);
          totalBytes += chunk.byteLength;
          yield create(SnapshotResponseSchema, { kind: { case: "chunk", value: chunk } });
        }
        const trailer = create(BackupTrailerSchema, { totalBytes: BigInt(totalBytes), sha256: hash.digest() });
        yield create(SnapshotResponseSchema, { kind: { case: "trailer", value: trailer } });
      } finally {
        chunks.close();
      }
    },
  };
}
