import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import type { PipelineRequest, PipelineResponse } from "../../gen/raftkv/v1/kv_pb.js";
import {
  ForwardRequestSchema,
  RaftMessageSchema,
  RaftService,
  StepRequestSchema,
  type ForwardRequest,
  type StepRequest,
} from "../../gen/raftkv/v1/raft_pb.js";
import type { Message, NodeId, SnapshotRequest } from "../core/index.js";
import { assert } from "../lib/assert.js";
import { backoffDelayMs } from "./backoff.js";
import { guardedSessionManager } from "./guarded-session.js";
import { messageToProto, type StepMessage } from "./convert.js";
import { stepEnvelopeBytesMax, stepMessageBytesMax } from "./message-size.js";
import type { ResolvedPeerTransportOptions } from "./options.js";
import type { PeerState, PeerStateKind, SnapshotTransfer } from "./peer-state.js";
import { SendQueue } from "./send-queue.js";
import { snapshotDeadlineMs, snapshotRequests } from "./snapshot-stream.js";

export interface PeerStats {
  readonly url: string;
  readonly state: PeerStateKind;
  /** Messages waiting in the send queue. */
  readonly queued: number;
  /** Messages in Step calls that have not completed yet. */
  readonly inflight: number;
  /** Messages in Step calls the peer acknowledged. */
  readonly sent: number;
  /** Messages given up: evicted from a full queue, in a failed call, too large, or left over at close. */
  readonly dropped: number;
  /** Step calls the peer acknowledged (sent / steps is the mean batch size). */
  readonly steps: number;
  /** Failed calls (Step and InstallSnapshot). */
  readonly failures: number;
  readonly snapshotsSent: number;
  readonly snapshotsFailed: number;
}

/** Codes that mean the call died on the way (no answer from the peer's service), not a refusal by the peer. */
const transportFailureCodes: ReadonlySet<Code> = new Set([
  Code.DeadlineExceeded,
  Code.Unavailable,
  Code.Canceled,
  Code.Aborted,
  Code.Unknown,
  Code.Internal,
]);

/** Slack on top of the bytes the pipeline can hold, for headers, flow-control frames and responses. */
const sessionMemorySlackMb = 10;
const MiB = 1024 * 1024;

function describe(error: ConnectError): { code: string; message: string } {
  return { code: Code[error.code], message: error.rawMessage };
}

/**
 * One ordered stream to the peer and the bounded queue it drains. A link has two: appends travel on
 * their own lane so that a heartbeat, a vote or an acknowledgement never waits behind a large batch of
 * entries. Raft does not need order across the two (the core tolerates any reordering); within a lane
 * the order is the core's, which keeps a follower from rejecting appends that overtook each other.
 */
interface Lane {
  readonly name: "append" | "control";
  readonly queue: SendQueue<StepMessage>;
  /** The open Step stream, if any. */
  call: AbortController | undefined;
  /** Wakes the stream's request generator when messages arrive. */
  wake: (() => void) | undefined;
  /** Messages taken from the queue into the request being written. */
  writing: number;
}

/**
 * The link to one peer: per lane a bounded send queue and one long-lived Step stream (client streaming)
 * over one HTTP/2 connection, failure handling with backoff, and at most one snapshot stream.
 *
 * A stream pulls its next request only once the previous one is written to the connection (connect-node
 * writes a request stream one message at a time), so while one batch is on its way every message that
 * arrives joins the next one: batching grows with load by itself, with no timer and no per-message call.
 *
 * Nothing here blocks or throws towards the caller of enqueue(): every failure becomes a count, a log
 * line, and an onUnreachable / onSnapshotStatus callback, which always runs in a later microtask so that
 * the driver never sees a callback in the middle of its own send() call.
 */
export class PeerLink {
  private state: PeerState = { kind: "probing", failures: 0, downSinceMs: undefined };
  private snapshot: SnapshotTransfer = { kind: "none" };
  private readonly lanes: { readonly append: Lane; readonly control: Lane };
  private readonly session: Http2SessionManager;
  private readonly client: Client<typeof RaftService>;
  /** Every call in flight, with the controller that cancels it at close(). */
  private readonly calls = new Map<Promise<void>, AbortController>();
  private readonly batchBytesMax: number;
  /** Set once onUnreachable was reported for dropped messages; cleared by the next request written. */
  private dropReported = false;
  private counts = { sent: 0, dropped: 0, steps: 0, failures: 0, snapshotsSent: 0, snapshotsFailed: 0 };
  private closing: Promise<void> | undefined;

  constructor(
    readonly id: NodeId,
    readonly url: string,
    private readonly o: ResolvedPeerTransportOptions,
  ) {
    const lane = (name: Lane["name"]): Lane => ({
      name,
      queue: new SendQueue(o.queueMessagesMax, o.queueBytesMax),
      call: undefined,
      wake: undefined,
      writing: 0,
    });
    this.lanes = { append: lane("append"), control: lane("control") };
    this.batchBytesMax = o.msgBytesMax - stepEnvelopeBytesMax(o.clusterId);
    // One HTTP/2 connection per peer, kept alive by PINGs so that a peer that stops answering is noticed
    // within pingIntervalMs + pingTimeoutMs although its streams never end. Node's default budget of
    // 10 MiB per session would refuse new streams once two lanes' batches and a snapshot chunk are buffered.
    const bufferedMb = Math.ceil((2 * o.msgBytesMax + o.snapshotChunkBytes) / MiB);
    this.session = new Http2SessionManager(
      url,
      {
        pingIntervalMs: o.keepalive.pingIntervalMs,
        pingTimeoutMs: o.keepalive.pingTimeoutMs,
        idleConnectionTimeoutMs: o.keepalive.idleConnectionTimeoutMs,
      },
      { maxSessionMemory: bufferedMb + sessionMemorySlackMb },
    );
    const transport = createGrpcTransport({
      baseUrl: url,
      sessionManager: guardedSessionManager(this.session, () => this.state.kind === "closed"),
      writeMaxBytes: o.msgBytesMax,
    });
    this.client = createClient(RaftService, transport);
  }

  /** Queues a message (or starts a snapshot stream). Never blocks, never throws. */
  enqueue(m: Message): void {
    if (this.state.kind === "closed") return;
    if (m.type === "snapshot") {
      this.startSnapshot(m);
      return;
    }
    const lane = m.type === "append" ? this.lanes.append : this.lanes.control;
    const evicted = lane.queue.push(m, stepMessageBytesMax(m));
    if (evicted > 0) {
      this.counts.dropped += evicted;
      // A full queue means the peer cannot keep up (or is down): the leader should stop streaming to it
      // and probe instead. Once per episode is enough; the next request written starts a new one.
      if (!this.dropReported) {
        this.dropReported = true;
        this.notify(() => this.o.onUnreachable(this.id));
      }
    }
    this.serve(lane);
  }

  stats(): PeerStats {
    const { append, control } = this.lanes;
    return {
      url: this.url,
      state: this.state.kind,
      queued: append.queue.length + control.queue.length,
      inflight: append.writing + control.writing,
      ...this.counts,
    };
  }

  /**
   * A Forward stream to this peer, the leader, over the link's HTTP/2 connection: the follower's client
   * writes go out as they come, each with the envelope every peer request carries, and the answers come
   * back in any order. Ends with the error that broke the call; close() cancels it.
   */
  async *forwardStream(requests: AsyncIterable<PipelineRequest>, signal: AbortSignal): AsyncGenerator<PipelineResponse> {
    if (this.state.kind === "closed") throw new ConnectError(`the link to node ${this.id} is closed`, Code.Unavailable);
    const envelope = { clusterId: this.o.clusterId, from: BigInt(this.o.selfId), to: BigInt(this.id) };
    async function* withEnvelope(): AsyncGenerator<ForwardRequest> {
      for await (const request of requests) yield create(ForwardRequestSchema, { ...envelope, request });
    }
    const controller = new AbortController();
    const abort = (): void => controller.abort(signal.reason);
    if (signal.aborted) abort();
    else signal.addEventListener("abort", abort, { once: true });
    let ended: () => void = () => {};
    const settled = new Promise<void>((resolve) => (ended = resolve));
    this.calls.set(settled, controller);
    try {
      for await (const answer of this.client.forward(withEnvelope(), { signal: controller.signal })) {
        if (answer.response !== undefined) yield answer.response;
      }
    } finally {
      signal.removeEventListener("abort", abort);
      this.calls.delete(settled);
      ended();
    }
  }

  /** Cancels every call, drops the queues, and resolves once every call has settled. Idempotent. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.setState({ kind: "closed" });
    for (const lane of [this.lanes.append, this.lanes.control]) {
      this.counts.dropped += lane.queue.clear();
      lane.wake?.();
    }
    for (const controller of this.calls.values()) controller.abort();
    this.session.abort();
    this.closing = Promise.allSettled([...this.calls.keys()]).then(() => undefined);
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------------
  // Lifecycle: the one place that changes `state`.

  private setState(next: PeerState): void {
    const prev = this.state;
    assert(prev.kind !== "closed", () => `peer ${this.id}: state change ${prev.kind} -> ${next.kind} after close`);
    if (prev.kind === "backoff") clearTimeout(prev.timer);
    if (next.kind === "active" && prev.kind === "probing" && prev.downSinceMs !== undefined) {
      this.o.logger.info("peer reachable again", {
        peer: this.id,
        url: this.url,
        downMs: Date.now() - prev.downSinceMs,
        failedCalls: prev.failures,
        dropped: this.counts.dropped,
      });
    }
    this.state = next;
  }

  private enterBackoff(error: ConnectError): void {
    const prev = this.state;
    assert(prev.kind === "probing" || prev.kind === "active", () => `peer ${this.id}: backoff from ${prev.kind}`);
    const failures = prev.kind === "probing" ? prev.failures + 1 : 1;
    const downSinceMs = prev.kind === "probing" && prev.downSinceMs !== undefined ? prev.downSinceMs : Date.now();
    const delayMs = backoffDelayMs(failures, this.o.backoff.delayMsMin, this.o.backoff.delayMsMax, this.o.random);
    if (failures === 1) {
      // Logged once per outage; later failures only count, so a long outage does not flood the log.
      this.o.logger.warn("peer unreachable", { peer: this.id, url: this.url, ...describe(error), retryInMs: delayMs });
    }
    const timer = setTimeout(() => this.onBackoffElapsed(), delayMs);
    this.setState({ kind: "backoff", failures, downSinceMs, retryAtMs: Date.now() + delayMs, timer });
  }

  private onBackoffElapsed(): void {
    if (this.state.kind !== "backoff") return;
    this.setState({ kind: "probing", failures: this.state.failures, downSinceMs: this.state.downSinceMs });
    this.serve(this.lanes.control);
    this.serve(this.lanes.append);
  }

  // -------------------------------------------------------------------------------------------------
  // Step streams

  /** Makes sure `lane` has a stream to drain its queue: wakes the open one, or opens one. */
  private serve(lane: Lane): void {
    if (lane.queue.length === 0) return;
    if (lane.call !== undefined) {
      lane.wake?.();
      return;
    }
    if (this.state.kind !== "probing" && this.state.kind !== "active") return;
    const controller = new AbortController();
    lane.call = controller;
    const call = this.client.step(this.requests(lane, controller.signal), { signal: controller.signal }).then(
      () => this.onStreamEnded(lane, controller, undefined),
      (e: unknown) => this.onStreamEnded(lane, controller, ConnectError.from(e)),
    );
    const tracked = call.finally(() => this.calls.delete(tracked));
    this.calls.set(tracked, controller);
  }

  /**
   * The requests of one stream: each takes the oldest queued messages that fit in one request. It is
   * pulled again only once the previous request is written, which is when that request counts as sent.
   */
  private async *requests(lane: Lane, signal: AbortSignal): AsyncGenerator<StepRequest> {
    for (;;) {
      while (lane.queue.length === 0 && !signal.aborted) {
        await new Promise<void>((resolve) => (lane.wake = resolve));
        lane.wake = undefined;
      }
      if (signal.aborted || this.state.kind === "closed") return;
      const batch = this.takeBatch(lane.queue);
      if (batch.length === 0) continue;
      lane.writing = batch.length;
      yield create(StepRequestSchema, {
        clusterId: this.o.clusterId,
        from: BigInt(this.o.selfId),
        to: BigInt(this.id),
        messages: batch.map(messageToProto),
        incarnation: this.o.incarnation,
        fromPeerUrl: this.o.selfPeerUrl,
      });
      lane.writing = 0;
      this.counts.sent += batch.length;
      this.counts.steps++;
      this.dropReported = false;
      if (this.state.kind === "probing") this.setState({ kind: "active" });
    }
  }

  /** The oldest queued messages that fit in one request, in queue order. */
  private takeBatch(queue: SendQueue<StepMessage>): StepMessage[] {
    const batch: StepMessage[] = [];
    let bytes = 0;
    while (batch.length < this.o.batchMessagesMax) {
      const size = queue.peekSize();
      if (size === undefined || (batch.length > 0 && bytes + size > this.batchBytesMax)) break;
      const m = queue.shift();
      assert(m !== undefined, "peer: queue shrank under the batcher");
      if (size > this.batchBytesMax && !this.fitsAlone(m)) continue;
      batch.push(m);
      bytes += size;
    }
    return batch;
  }

  /**
   * For a message whose size bound exceeds the batch budget: does its exact encoding fit? If not it can
   * never be sent (the receiver would refuse it), so it is dropped here. The driver limits entry sizes to
   * stay clear of this; reaching it means msgBytesMax is set below the core's message size.
   */
  private fitsAlone(m: StepMessage): boolean {
    const bytes = toBinary(RaftMessageSchema, messageToProto(m)).byteLength + 6;
    if (bytes <= this.batchBytesMax) return true;
    this.counts.dropped++;
    this.o.logger.error("message too large for the peer link, dropped", {
      peer: this.id,
      type: m.type,
      bytes,
      msgBytesMax: this.o.msgBytesMax,
    });
    return false;
  }

  /**
   * A stream ended. It never ends by itself while the link is open, so this is a failure: the peer
   * refused a request (another cluster, a changed incarnation, a malformed message), the connection
   * died (refused, reset, a PING unanswered), or close() cancelled it. The request being written is lost;
   * Raft resends what matters once the core, told the peer is unreachable, probes it again.
   */
  private onStreamEnded(lane: Lane, controller: AbortController, error: ConnectError | undefined): void {
    if (lane.call === controller) {
      lane.call = undefined;
      lane.wake?.();
    }
    this.counts.dropped += lane.writing;
    lane.writing = 0;
    if (this.state.kind === "closed") return;
    this.counts.failures++;
    this.notify(() => this.o.onUnreachable(this.id));
    const cause = error ?? new ConnectError("the peer ended the Step stream", Code.Unavailable);
    // Both lanes start again on a fresh connection, unless the peer itself answered with an error. A
    // connection attempt to a host that drops packets hangs until the OS gives up (minutes), and an
    // established connection to a peer that restarted or stalled can keep swallowing requests until a
    // PING notices.
    if (transportFailureCodes.has(cause.code)) this.session.abort(cause);
    for (const other of [this.lanes.append, this.lanes.control]) {
      if (other !== lane) other.call?.abort();
    }
    // In backoff already: the other lane's stream of the same outage; the wait stands.
    if (this.state.kind === "probing" || this.state.kind === "active") this.enterBackoff(cause);
  }

  // -------------------------------------------------------------------------------------------------
  // Snapshots

  private startSnapshot(m: SnapshotRequest): void {
    if (this.snapshot.kind === "streaming") {
      // The core waits for the status of a snapshot before it sends another, so this is a retry of the
      // one already on its way (or a newer one that can follow once the status is in). No status for it:
      // the stream in flight will report.
      this.counts.dropped++;
      this.o.logger.warn("a snapshot is already streaming to this peer; dropped another", {
        peer: this.id,
        streamingIndex: this.snapshot.index,
        droppedIndex: m.snapshot.meta.index,
      });
      return;
    }
    const totalBytes = m.snapshot.data.byteLength;
    this.snapshot = { kind: "streaming", index: m.snapshot.meta.index, totalBytes, startedAtMs: Date.now() };
    const timeoutMs = snapshotDeadlineMs(totalBytes, this.o.snapshotChunkBytes, this.o.requestTimeoutMs);
    const controller = new AbortController();
    const call = this.client
      .installSnapshot(snapshotRequests(this.o.clusterId, m, this.o.snapshotChunkBytes), { timeoutMs, signal: controller.signal })
      .then(
        (response) =>
          this.onSnapshotSettled(response.accepted ? undefined : new ConnectError("the peer did not accept the snapshot", Code.Aborted)),
        (e: unknown) => this.onSnapshotSettled(ConnectError.from(e)),
      );
    const tracked = call.finally(() => this.calls.delete(tracked));
    this.calls.set(tracked, controller);
  }

  private onSnapshotSettled(error: ConnectError | undefined): void {
    const transfer = this.snapshot;
    assert(transfer.kind === "streaming", "peer: snapshot settled without a stream");
    this.snapshot = { kind: "none" };
    if (this.state.kind === "closed") return;
    const fields = { peer: this.id, index: transfer.index, bytes: transfer.totalBytes, ms: Date.now() - transfer.startedAtMs };
    if (error === undefined) {
      this.counts.snapshotsSent++;
      this.o.logger.info("snapshot sent", fields);
    } else {
      this.counts.snapshotsFailed++;
      this.counts.failures++;
      this.o.logger.warn("snapshot send failed", { ...fields, ...describe(error) });
    }
    this.notify(() => this.o.onSnapshotStatus(this.id, error === undefined));
  }

  // -------------------------------------------------------------------------------------------------

  /** Runs a callback of the driver in a later microtask, unless the link is closed by then. */
  private notify(callback: () => void): void {
    queueMicrotask(() => {
      if (this.state.kind !== "closed") callback();
    });
  }
}
