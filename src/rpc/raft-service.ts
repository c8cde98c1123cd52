import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { fastifyConnectPlugin } from "@connectrpc/connect-fastify";
import type * as http2 from "node:http2";
import type { FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerBase } from "fastify";
import { create } from "@bufbuild/protobuf";
import type { PipelineRequest } from "../../gen/raftkv/v1/kv_pb.js";
import {
  MemberPhase,
  ProbeResponseSchema,
  RaftService,
  type ForwardRequest,
  type InstallSnapshotRequest,
  type ProbeResponse,
  type StepRequest,
} from "../../gen/raftkv/v1/raft_pb.js";
import type { Message, NodeId, SnapshotRequest } from "../core/index.js";
import type { Logger } from "../lib/logger.js";
import {
  nodeIdFromProto,
  SnapshotAssembler,
  snapshotHeaderFromProto,
  stepMessagesFromProto,
  type ConvertError,
  type SnapshotHeaderInfo,
} from "../transport/index.js";
import type { KvUnaryHandlers } from "./kv-unary.js";
import { servePipeline } from "./pipeline.js";

export interface RaftServiceOptions {
  readonly clusterId: string;
  readonly selfId: NodeId;
  /** Whether `id` is a member (voter or learner) this node accepts messages from. */
  isMember(id: NodeId): boolean;
  /**
   * Whether a batch from member `from` carrying `incarnation` may be delivered: false when this node
   * knew another incarnation of that member (it lost its data; src/driver/peer-incarnations.ts).
   */
  checkIncarnation(from: NodeId, incarnation: bigint): boolean;
  /** What this node holds, for Probe; answered in every phase of its start-up. */
  probeState(): ProbeState;
  /**
   * Whether this node has seen an incarnation of member `id`, in a message or a Probe answer (its
   * peers.json). Probe answers it to the asker, for the bootstrap check of an empty member.
   */
  hasSeen(id: NodeId): boolean;
  /**
   * A Step batch from `id` that passed every check said its sender's peer URL is `url` (a well-formed
   * http or https URL): the driver uses it to answer a member it has no URL for (Driver.learnPeerUrl).
   */
  learnPeerUrl(id: NodeId, url: string): void;
  /**
   * Hands a batch to the driver, which steps it into its core. Must not block: the Step stream reads the
   * next batch only after this returns (Raft-level answers travel on the receiver's own stream).
   */
  deliver(messages: Message[]): void;
  /** Hands a complete, checksum-verified snapshot to the driver; resolves once the driver has taken it. */
  deliverSnapshot(message: SnapshotRequest): Promise<void>;
  /**
   * What runs the writes followers forward (RaftService.Forward): the client port's own handlers, built
   * without forwarding so a write is never forwarded twice, and its request deadline. Undefined until
   * the client port exists, or when this node takes no forwarded writes.
   */
  forwarded?(): ForwardedWrites | undefined;
  /** The largest snapshot this node accepts (the receive buffer is allocated up front). */
  readonly snapshotBytesMax: number;
  /** How long a snapshot stream may wait for its next chunk before it is dropped. Default 30 s. */
  readonly snapshotChunkIdleMs?: number;
  readonly logger: Logger;
}

export interface ForwardedWrites {
  readonly handlers: KvUnaryHandlers;
  readonly requestTimeoutMs: number;
}

/** What Probe answers (see ProbeResponse in raft.proto). */
export type ProbeState =
  | { readonly phase: "starting" }
  | { readonly phase: "bootstrapping" }
  | {
      readonly phase: "running";
      readonly term: number;
      readonly lastIndex: number;
      readonly snapshotIndex: number;
      readonly incarnation: bigint;
    };

/**
 * The RaftService handler of the peer port. Every call is checked, in this order, before anything reaches
 * the driver:
 *  1. the cluster id matches ours (FailedPrecondition otherwise: two clusters reusing addresses must never
 *     mix messages);
 *  2. the call is addressed to this node and comes from a member (FailedPrecondition);
 *  3. every message is well formed and carries the call's own from/to (InvalidArgument);
 *  4. (Step) the sender's incarnation is the one this node knows (FailedPrecondition: it lost its data).
 * A refused batch is refused whole: nothing of it is delivered.
 */
export function createRaftServiceImpl(o: RaftServiceOptions): ServiceImpl<typeof RaftService> {
  const gate = new RequestGate(o);
  const snapshots = new SnapshotReceiver(o, gate);
  return {
    async step(requests) {
      // A long-lived stream (see raft.proto): each request is a batch, checked and delivered in order. A
      // refused batch ends the stream with its error; nothing of that batch is delivered.
      for await (const request of requests) gate.deliverBatch(request);
      return {};
    },

    async *forward(requests, context) {
      gate.requireRunning();
      const target = o.forwarded?.();
      if (target === undefined) throw new ConnectError(`node ${o.selfId} takes no forwarded writes right now`, Code.Unavailable);
      const answers = servePipeline(forwardedRequests(gate, requests), {
        handlers: target.handlers,
        requestTimeoutMs: target.requestTimeoutMs,
        signal: context.signal,
      });
      for await (const response of answers) yield { response };
    },

    probe(request) {
      const from = gate.checkEnvelope("Probe", request.clusterId, request.from, request.to);
      return probeResponse(o.probeState(), () => o.hasSeen(from));
    },

    installSnapshot: (requests, context) => snapshots.receive(requests, context.signal),
  };
}

/**
 * The writes of a Forward stream, each checked like any peer request (cluster, sender, addressee) and
 * refused unless it is a write: a follower answers reads itself. A refusal ends the stream with its
 * error once the writes already taken have been answered.
 */
async function* forwardedRequests(gate: RequestGate, requests: AsyncIterable<ForwardRequest>): AsyncGenerator<PipelineRequest> {
  for await (const r of requests) {
    gate.checkEnvelope("Forward", r.clusterId, r.from, r.to);
    const kind = r.request?.request.case;
    if (r.request === undefined || (kind !== "put" && kind !== "delete" && kind !== "txn")) {
      throw new ConnectError(
        `malformed request: a forwarded request must be a put, delete or txn, got ${kind ?? "nothing"}`,
        Code.InvalidArgument,
      );
    }
    yield r.request;
  }
}

/** Checks 1 to 4 above, shared by every call; each refusal is logged with what was refused and why. */
class RequestGate {
  constructor(private readonly o: RaftServiceOptions) {}

  /** A node that is still opening its storage takes no message; senders retry (and back off). */
  requireRunning(): void {
    if (this.o.probeState().phase !== "running") {
      throw new ConnectError(`node ${this.o.selfId} is starting and takes no Raft messages yet`, Code.Unavailable);
    }
  }

  invalid(error: ConvertError, call: string, from: string): ConnectError {
    this.o.logger.warn("malformed peer request refused", { call, from, field: error.path, reason: error.reason });
    return new ConnectError(`malformed request: ${error.message}`, Code.InvalidArgument);
  }

  /** Checks 1 and 2 above; returns the sender's id. */
  checkEnvelope(call: string, clusterId: string, fromWire: bigint, toWire: bigint): NodeId {
    const o = this.o;
    if (clusterId !== o.clusterId) {
      o.logger.warn("request from another cluster refused", {
        call,
        from: String(fromWire),
        ourClusterId: o.clusterId,
        theirClusterId: clusterId,
      });
      throw new ConnectError(
        `cluster id mismatch: this node belongs to cluster ${JSON.stringify(o.clusterId)}, the request is for cluster ${JSON.stringify(clusterId)}`,
        Code.FailedPrecondition,
      );
    }
    const from = nodeIdFromProto(fromWire, "from");
    if (!from.ok) throw this.invalid(from.error, call, String(fromWire));
    const to = nodeIdFromProto(toWire, "to");
    if (!to.ok) throw this.invalid(to.error, call, String(fromWire));
    if (from.value === o.selfId) {
      o.logger.warn("request claiming to come from this node refused", { call, from: from.value });
      throw new ConnectError(`node ${o.selfId} does not send requests to itself`, Code.FailedPrecondition);
    }
    if (to.value !== o.selfId) {
      o.logger.warn("request for another node refused", { call, from: from.value, to: to.value, self: o.selfId });
      throw new ConnectError(`request for node ${to.value} reached node ${o.selfId}`, Code.FailedPrecondition);
    }
    if (!o.isMember(from.value)) {
      o.logger.warn("request from a non-member refused", { call, from: from.value });
      throw new ConnectError(`node ${from.value} is not a member of cluster ${JSON.stringify(o.clusterId)}`, Code.FailedPrecondition);
    }
    return from.value;
  }

  /** Checks all of a Step batch (1 to 4), then hands it to the driver. */
  deliverBatch(request: StepRequest): void {
    const o = this.o;
    const from = this.checkEnvelope("Step", request.clusterId, request.from, request.to);
    this.requireRunning();
    const messages = stepMessagesFromProto(request.messages, from, o.selfId);
    if (!messages.ok) throw this.invalid(messages.error, "Step", String(from));
    if (!o.checkIncarnation(from, request.incarnation)) {
      throw new ConnectError(
        `node ${o.selfId} refuses messages from member ${from}: it knew another incarnation of that member, so member ${from} lost its data directory ` +
          "and forgot the votes and acknowledgements it gave (docs/operations.md, a member lost its data directory)",
        Code.FailedPrecondition,
      );
    }
    if (request.fromPeerUrl !== "" && isPeerUrl(request.fromPeerUrl)) o.learnPeerUrl(from, request.fromPeerUrl);
    try {
      o.deliver(messages.value);
    } catch (e) {
      o.logger.error("the driver refused a batch of peer messages", { err: e, from });
      throw new ConnectError("this node cannot take messages right now", Code.Unavailable, undefined, undefined, e);
    }
  }
}

/** InstallSnapshot: a header, then chunks, assembled and verified before the driver sees the snapshot. */
class SnapshotReceiver {
  /**
   * The open snapshot stream of each sender: one each, so a confused peer cannot pin many buffers. A
   * newer stream from the same sender replaces an older one still receiving chunks (aborts it): a
   * sender streams one snapshot to a node at a time, so such a stream is one whose end was lost (a
   * partition ate the close). Refusing the newer one instead left a follower unable to take any
   * snapshot from that leader ever again (found by review). An older stream already handing its
   * snapshot to the driver is alive and keeps the slot; the newer one is refused.
   */
  private readonly receivingFrom = new Map<NodeId, { readonly abort: AbortController; delivering: boolean }>();
  private readonly chunkIdleMs: number;

  constructor(
    private readonly o: RaftServiceOptions,
    private readonly gate: RequestGate,
  ) {
    this.chunkIdleMs = o.snapshotChunkIdleMs ?? 30_000;
  }

  async receive(requests: AsyncIterable<InstallSnapshotRequest>, signal: AbortSignal): Promise<{ accepted: boolean }> {
    const stream = requests[Symbol.asyncIterator]();
    const first = await nextChunk(stream, signal, this.chunkIdleMs);
    const header = this.checkHeader(first.done === true ? undefined : first.value);
    this.gate.requireRunning();
    const older = this.receivingFrom.get(header.from);
    if (older?.delivering === true) {
      throw new ConnectError(`a snapshot from node ${header.from} is already being installed`, Code.Aborted);
    }
    if (older !== undefined) {
      this.o.logger.warn("a newer snapshot stream replaces one still open from the same node", { from: header.from });
      older.abort.abort();
    }
    const mine = { abort: new AbortController(), delivering: false };
    this.receivingFrom.set(header.from, mine);
    const abortMine = (): void => mine.abort.abort();
    signal.addEventListener("abort", abortMine, { once: true });
    try {
      const snapshot = await this.assemble(header, stream, mine.abort.signal);
      mine.delivering = true;
      try {
        await this.o.deliverSnapshot(snapshot);
      } catch (e) {
        this.o.logger.error("the driver refused a snapshot", { err: e, from: header.from, index: header.meta.index });
        throw new ConnectError("this node cannot install the snapshot right now", Code.Unavailable, undefined, undefined, e);
      }
      return { accepted: true };
    } finally {
      signal.removeEventListener("abort", abortMine);
      if (this.receivingFrom.get(header.from) === mine) this.receivingFrom.delete(header.from);
    }
  }

  private checkHeader(first: InstallSnapshotRequest | undefined): SnapshotHeaderInfo {
    if (first === undefined || first.payload.case !== "header") {
      const got = first === undefined ? "an empty stream" : (first.payload.case ?? "an empty message");
      throw new ConnectError(`malformed request: a snapshot stream starts with a header, got ${got}`, Code.InvalidArgument);
    }
    const wire = first.payload.value;
    this.gate.checkEnvelope("InstallSnapshot", wire.clusterId, wire.from, wire.to);
    const header = snapshotHeaderFromProto(wire);
    if (!header.ok) throw this.gate.invalid(header.error, "InstallSnapshot", String(wire.from));
    const limit = this.o.snapshotBytesMax;
    if (header.value.totalBytes > limit) {
      this.o.logger.warn("snapshot too large, refused", { from: header.value.from, bytes: header.value.totalBytes, limit });
      throw new ConnectError(
        `snapshot of ${header.value.totalBytes} bytes exceeds this node's limit of ${limit} bytes`,
        Code.ResourceExhausted,
      );
    }
    return header.value;
  }

  /**
   * Reads chunks up to the end of the stream; every chunk carries data, so the loop is bounded by
   * totalBytes, and each wait for a chunk is bounded by chunkIdleMs and ends when `signal` aborts.
   */
  private async assemble(
    header: SnapshotHeaderInfo,
    rest: AsyncIterator<InstallSnapshotRequest>,
    signal: AbortSignal,
  ): Promise<SnapshotRequest> {
    const assembler = new SnapshotAssembler(header);
    for (let i = 1; ; i++) {
      const next = await nextChunk(rest, signal, this.chunkIdleMs);
      if (next.done === true) break;
      const payload = next.value.payload;
      const path = `messages[${i}]`;
      if (payload.case !== "chunk") {
        throw new ConnectError(
          `malformed request: ${path} should be a chunk, got ${payload.case ?? "an empty message"}`,
          Code.InvalidArgument,
        );
      }
      if (payload.value.data.byteLength === 0) {
        throw new ConnectError(`malformed request: ${path}.chunk.data is empty`, Code.InvalidArgument);
      }
      const added = assembler.addChunk(payload.value, `${path}.chunk`);
      if (!added.ok) throw this.gate.invalid(added.error, "InstallSnapshot", String(header.from));
    }
    const done = assembler.finish();
    if (!done.ok) throw this.gate.invalid(done.error, "InstallSnapshot", String(header.from));
    return done.value;
  }
}

function probeResponse(state: ProbeState, hasSeenAsker: () => boolean): ProbeResponse {
  switch (state.phase) {
    case "starting":
      return create(ProbeResponseSchema, { phase: MemberPhase.STARTING });
    case "bootstrapping":
      return create(ProbeResponseSchema, { phase: MemberPhase.BOOTSTRAPPING });
    case "running":
      return create(ProbeResponseSchema, {
        phase: MemberPhase.RUNNING,
        term: BigInt(state.term),
        lastIndex: BigInt(state.lastIndex),
        snapshotIndex: BigInt(state.snapshotIndex),
        incarnation: state.incarnation,
        askerUnknown: !hasSeenAsker(),
      });
  }
}

/** The next message of a stream, or an error when `signal` aborts or none arrives within `idleMs`. */
function nextChunk<T>(stream: AsyncIterator<T>, signal: AbortSignal, idleMs: number): Promise<IteratorResult<T>> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => settle(() => reject(new ConnectError("the snapshot stream was replaced or cancelled", Code.Aborted)));
    const timer = setTimeout(
      () => settle(() => reject(new ConnectError(`no snapshot chunk arrived within ${idleMs} ms`, Code.DeadlineExceeded))),
      idleMs,
    );
    let settled = false;
    function settle(action: () => void): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      action();
    }
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    stream.next().then(
      (result) => settle(() => resolve(result)),
      (error: unknown) => settle(() => reject(error instanceof Error ? error : new Error(String(error)))),
    );
  });
}

export interface RaftServiceRegistration extends RaftServiceOptions {
  /** This node's own message size: it sizes the flow-control windows. */
  readonly msgBytesMax: number;
  /**
   * The largest message this node reads (a Step request, or one message of a snapshot stream); at
   * least the largest msgBytesMax of any member, or a leader's batch is refused for good. Default
   * msgBytesMax.
   */
  readonly readMsgBytesMax?: number;
}

/** Ceiling of an HTTP/2 flow-control window (RFC 9113, 6.9.1). */
const windowBytesMax = 2 ** 31 - 1;
/**
 * Concurrent streams a peer connection may open. A member's transport uses two Step streams plus one
 * snapshot stream and the start-up Probe; the rest is headroom for streams being torn down. It bounds
 * what one connection can pin (streams x readMaxBytes); HTTP/2's default is unbounded.
 */
const peerStreamsMax = 32;

/**
 * Registers RaftService on a Fastify instance: the peer listener, created with `http2: true` (and, on
 * Node < 24, `forceCloseConnections: true`, or close() waits for every peer to hang up). Await it before
 * listen().
 *
 * It also opens the HTTP/2 flow-control windows of each peer connection to the message size. With the
 * default 64 KiB windows a sender can only push 64 KiB before waiting a round trip for a WINDOW_UPDATE,
 * so one 4 MiB batch costs 64 round trips: invisible on loopback, the bottleneck across zones. A larger
 * window costs no memory by itself: Connect reads at most msgBytesMax per request either way.
 */
export async function registerRaftService<Server extends RawServerBase>(
  app: FastifyInstance<Server, RawRequestDefaultExpression<Server>, RawReplyDefaultExpression<Server>>,
  options: RaftServiceRegistration,
): Promise<void> {
  if (!Number.isSafeInteger(options.msgBytesMax) || options.msgBytesMax <= 0) {
    throw new RangeError(`RaftService: msgBytesMax must be a positive integer, got ${String(options.msgBytesMax)}`);
  }
  if (!Number.isSafeInteger(options.snapshotBytesMax) || options.snapshotBytesMax < 0) {
    throw new RangeError(`RaftService: snapshotBytesMax must be a non-negative integer, got ${String(options.snapshotBytesMax)}`);
  }
  if (app.initialConfig.http2 !== true) {
    // Peers call over HTTP/2 only (h2c): gRPC and client streaming need it.
    throw new RangeError("RaftService: the peer listener must be created with Fastify({ http2: true })");
  }
  const streamWindowBytes = Math.min(options.msgBytesMax, windowBytesMax);
  const connectionWindowBytes = Math.min(2 * options.msgBytesMax, windowBytesMax);
  // http2: true above makes the raw server an Http2Server (or Http2SecureServer); both emit "session".
  (app.server as unknown as http2.Http2Server).on("session", (session) => {
    session.settings({ initialWindowSize: streamWindowBytes, maxConcurrentStreams: peerStreamsMax });
    session.setLocalWindowSize(connectionWindowBytes);
  });
  const impl = createRaftServiceImpl(options);
  await app.register(fastifyConnectPlugin, {
    routes: (router) => router.service(RaftService, impl),
    readMaxBytes: Math.max(options.msgBytesMax, options.readMsgBytesMax ?? 0),
  });
}

/** Whether `text` is an absolute http or https URL (what a peer URL must be; anything else is ignored). */
function isPeerUrl(text: string): boolean {
  if (text.length > 2048) return false;
  try {
    const url = new URL(text);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}
