import { crc32c } from "@node-rs/crc32";
import type { SnapshotChunk, SnapshotHeader } from "../../gen/raftkv/v1/raft_pb.js";
import type { NodeId, SnapshotMeta, SnapshotRequest } from "../core/index.js";
import { assert } from "../lib/assert.js";
import { ConvertError, nodeIdFromProto, snapshotMetaFromProto, u64FromProto, type Converted } from "./convert.js";

/** A validated InstallSnapshot header. */
export interface SnapshotHeaderInfo {
  readonly clusterId: string;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly meta: SnapshotMeta;
  readonly totalBytes: number;
  readonly crc32c: number;
}

function fail<T>(path: string, reason: string): Converted<T> {
  return { ok: false, error: new ConvertError(path, reason) };
}

export function snapshotHeaderFromProto(h: SnapshotHeader): Converted<SnapshotHeaderInfo> {
  const from = nodeIdFromProto(h.from, "header.from");
  if (!from.ok) return from;
  const to = nodeIdFromProto(h.to, "header.to");
  if (!to.ok) return to;
  const term = u64FromProto(h.term, "header.term");
  if (!term.ok) return term;
  const meta = snapshotMetaFromProto(h.meta, "header.meta");
  if (!meta.ok) return meta;
  const totalBytes = u64FromProto(h.totalBytes, "header.total_bytes");
  if (!totalBytes.ok) return totalBytes;
  if (meta.value.index === 0) return fail("header.meta.index", "a snapshot covers at least entry 1");
  return {
    ok: true,
    value: {
      clusterId: h.clusterId,
      from: from.value,
      to: to.value,
      term: term.value,
      meta: meta.value,
      totalBytes: totalBytes.value,
      crc32c: h.crc32c,
    },
  };
}

/**
 * The receiving side of InstallSnapshot: copies chunks into one buffer of the announced size, in order and
 * without gaps or overlaps, keeping a running CRC-32C; finish() checks that everything arrived and that
 * the checksum matches before the snapshot may reach the core. The caller bounds header.totalBytes before
 * constructing it (the buffer is allocated up front).
 */
export class SnapshotAssembler {
  private readonly data: Uint8Array;
  private received = 0;
  private crc = 0;

  constructor(private readonly header: SnapshotHeaderInfo) {
    this.data = new Uint8Array(header.totalBytes);
  }

  get receivedBytes(): number {
    return this.received;
  }

  addChunk(chunk: SnapshotChunk, path: string): Converted<void> {
    const offset = u64FromProto(chunk.offset, `${path}.offset`);
    if (!offset.ok) return offset;
    if (offset.value !== this.received) {
      return fail(`${path}.offset`, `is ${offset.value}, expected ${this.received} (chunks must arrive in order without gaps)`);
    }
    const end = this.received + chunk.data.byteLength;
    if (end > this.header.totalBytes) {
      return fail(`${path}.data`, `runs to byte ${end}, past the announced total of ${this.header.totalBytes}`);
    }
    this.data.set(chunk.data, this.received);
    this.crc = crc32c(chunk.data, this.crc);
    this.received = end;
    return { ok: true, value: undefined };
  }

  /** The snapshot as the core's message, once complete and intact. */
  finish(): Converted<SnapshotRequest> {
    if (this.received !== this.header.totalBytes) {
      return fail("stream", `ended after ${this.received} of ${this.header.totalBytes} bytes`);
    }
    // The running CRC of an empty snapshot is 0, which is also crc32c of no bytes.
    if (this.crc !== this.header.crc32c) {
      return fail("header.crc32c", `the data's CRC-32C is ${hex(this.crc)}, the header says ${hex(this.header.crc32c)}`);
    }
    assert(this.data.byteLength === this.header.totalBytes, "snapshot assembler: buffer size changed");
    const h = this.header;
    return {
      ok: true,
      value: { type: "snapshot", from: h.from, to: h.to, term: h.term, snapshot: { meta: h.meta, data: this.data } },
    };
  }
}

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, "0")}`;
}
