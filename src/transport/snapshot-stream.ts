import { create } from "@bufbuild/protobuf";
import { InstallSnapshotRequestSchema, type InstallSnapshotRequest } from "../../gen/raftkv/v1/raft_pb.js";
import type { SnapshotRequest } from "../core/index.js";
import { assert } from "../lib/assert.js";
import { crc32cInTurns } from "../lib/crc-in-turns.js";
import { snapshotMetaToProto } from "./convert.js";

/**
 * The sending side of InstallSnapshot: a header with the size and CRC-32C of the whole data, then the
 * data in chunks of `chunkBytes`. Chunks are views into the snapshot (no copies), and the Connect client
 * pulls the next one only after the previous one was written, so memory stays at one chunk in flight
 * besides the snapshot itself.
 */
export async function* snapshotRequests(clusterId: string, m: SnapshotRequest, chunkBytes: number): AsyncGenerator<InstallSnapshotRequest> {
  assert(chunkBytes > 0, "snapshot stream: chunkBytes must be positive");
  const data = m.snapshot.data;
  // In slices between loop turns: the whole of a large snapshot in one go stalls the leader's loop.
  const crc = await crc32cInTurns(data);
  yield create(InstallSnapshotRequestSchema, {
    payload: {
      case: "header",
      value: {
        clusterId,
        from: BigInt(m.from),
        to: BigInt(m.to),
        term: BigInt(m.term),
        meta: snapshotMetaToProto(m.snapshot.meta),
        totalBytes: BigInt(data.byteLength),
        crc32c: crc,
      },
    },
  });
  for (let offset = 0; offset < data.byteLength; offset += chunkBytes) {
    yield create(InstallSnapshotRequestSchema, {
      payload: { case: "chunk", value: { offset: BigInt(offset), data: data.subarray(offset, offset + chunkBytes) } },
    });
  }
}

/**
 * The deadline of a whole snapshot stream: requestTimeoutMs for the header, for each chunk, and for the
 * receiver to verify and install it. It assumes the link moves at least one chunk per requestTimeoutMs
 * (1 MiB/s with the defaults); a stream slower than that fails and the leader retries later. A connection
 * that dies mid-stream is caught sooner by the keepalive PINGs.
 */
export function snapshotDeadlineMs(totalBytes: number, chunkBytes: number, requestTimeoutMs: number): number {
  return requestTimeoutMs * (2 + Math.ceil(totalBytes / chunkBytes));
}
