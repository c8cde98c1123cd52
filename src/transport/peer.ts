import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { RaftMessageSchema, RaftService, StepRequestSchema } from "../../gen/raftkv/v1/raft_pb.js";
import type { Message, NodeId, SnapshotRequest } from "../core/index.js";
import { assert } from "../lib/assert.js";
import { backoffDelayMs } from "./backoff.js";
import { messageToProto, type StepMessage } from "./convert.js";
import { orderedSessionManager } from "./ordered-session.js";
import { stepEnvelopeBytesMax, stepMessageBytesMax } from "./message-size.js";
import type { ResolvedPeerTransportOptions } from "./options.js";
import { stepWindow, type PeerState, type PeerStateKind, type SnapshotTransfer } from "./peer-state.js";
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
const transportFailureCodes: ReadonlySet<Code> = new Set([Code.DeadlineExceeded, Code.Unavailable, Code.Canceled, Code.Aborted, Code.Unknown, Code.Internal]);

/** Slack on top of the bytes the pipeline can hold, for headers, flow-control frames and responses. */
const SESSION_MEMORY_SLACK_MB = 10;
const MB = 1024 * 1024;

function describe(error: ConnectError): { code: string; message: string } {
  return { code: Code[error.code], message: error.rawMessage };
}

/**
 * The link to one peer: a bounded send queue, a pump that packs the queue into pipelined Step calls over
 * one HTTP/2 connection, failure handling with backoff, and at most one snapshot stream.
 *
 * Nothing here blocks or throws towards the caller of enqueue(): every failure becomes a count, a log
 * line, and an onUnreachable / onSnapshotStatus callback, which always runs in a later microtask so that
 * the driver never sees a callback in the middle of its own send() call.
 */
export class PeerLink {
  private state: PeerState = { kind: "probing", failures: 0, downSinceMs: undefined };
  private snapshot: SnapshotTransfer = { kind: "none" };
  private readonly queue: SendQueue<StepMessage>;
  private readonly session: Http2SessionManager;
  private readonly client: Client<typeof RaftService>;
  /** Every call in flight, with the controller that cancels it at close(). */
  private readonly calls = new Map<Promise<void>, AbortController>();
  private readonly batchBytesMax: number;
  private pumpScheduled = false;
  /** Set once onUnreachable was reported for dropped messages; cleared by the next successful call. */
  private dropReported = false;
  private inflightSteps = 0;
  private inflightMessages = 0;
  private counts = { sent: 0, dropped: 0, steps: 0, failures: 0, snapshotsSent: 0, snapshotsFailed: 0 };
  private closing: Promise<void> | undefined;

  constructor(
    readonly id: NodeId,
    readonly url: string,
    private readonly o: ResolvedPeerTransportOptions,
  ) {
    this.queue = new SendQueue(o.queueMessagesMax, o.queueBytesMax);
    this.batchBytesMax = o.maxMsgBytes - stepEnvelopeBytesMax(o.clusterId);
    // One HTTP/2 connection per peer, kept alive by PINGs so that a peer that stops answering is noticed
    // within pingIntervalMs + pingTimeoutMs even while calls are in flight. Node's default budget of 10 MB
    // per session would refuse new streams once a full pipeline of large batches is buffered.
    const pipelineMb = Math.ceil(((o.inflightStepsMax + 1) * o.maxMsgBytes + o.snapshotChunkBytes) / MB);
    this.session = new Http2SessionManager(
      url,
      {
        pingIntervalMs: o.keepalive.pingIntervalMs,
        pingTimeoutMs: o.keepalive.pingTimeoutMs,
        idleConnectionTimeoutMs: o.keepalive.idleConnectionTimeoutMs,
      },
      { maxSessionMemory: pipelineMb + SESSION_MEMORY_SLACK_MB },
    );
    const stepPath = `/${RaftService.typeName}/${RaftService.method.step.name}`;
    const transport = createGrpcTransport({
      baseUrl: url,
      sessionManager: orderedSessionManager(
        this.session,
        (path) => path.endsWith(stepPath),
        () => this.state.kind === "closed",
      ),
      writeMaxBytes: o.maxMsgBytes,
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
    const evicted = this.queue.push(m, stepMessageBytesMax(m));
    if (evicted > 0) {
      this.counts.dropped += evicted;
      // A full queue means the peer cannot keep up (or is down): the leader should stop streaming to it
      // and probe instead. Once per episode is enough; the next successful call starts a new one.
      if (!this.dropReported) {
        this.dropReported = true;
        this.notify(() => this.o.onUnreachable(this.id));
      }
    }
    this.schedulePump();
  }

  stats(): PeerStats {
    return {
      url: this.url,
      state: this.state.kind,
      queued: this.queue.length,
      inflight: this.inflightMessages,
      ...this.counts,
    };
  }

  /** Cancels every call, drops the queue, and resolves once every call has settled. Idempotent. */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.setState({ kind: "closed" });
    this.counts.dropped += this.queue.clear();
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
    const delayMs = backoffDelayMs(failures, this.o.backoff.minMs, this.o.backoff.maxMs, this.o.random);
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
    this.schedulePump();
  }

  // -------------------------------------------------------------------------------------------------
  // Step calls

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // Deferred so that all the messages of one Ready (and of several send() calls in the same tick) end
    // up in one batch.
    queueMicrotask(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    // Bounded: each round either starts a call (at most the window) or empties the queue.
    while (this.queue.length > 0 && this.inflightSteps < stepWindow(this.state, this.o.inflightStepsMax)) {
      const batch = this.takeBatch();
      if (batch.length > 0) this.startStep(batch);
    }
  }

  /** The oldest queued messages that fit in one Step call, in queue order. */
  private takeBatch(): StepMessage[] {
    const batch: StepMessage[] = [];
    let bytes = 0;
    while (batch.length < this.o.batchMessagesMax) {
      const size = this.queue.peekSize();
      if (size === undefined || (batch.length > 0 && bytes + size > this.batchBytesMax)) break;
      const m = this.queue.shift();
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
   * stay clear of this; reaching it means maxMsgBytes is set below the core's message size.
   */
  private fitsAlone(m: StepMessage): boolean {
    const bytes = toBinary(RaftMessageSchema, messageToProto(m)).byteLength + 6;
    if (bytes <= this.batchBytesMax) return true;
    this.counts.dropped++;
    this.o.logger.error("message too large for the peer link, dropped", {
      peer: this.id,
      type: m.type,
      bytes,
      maxMsgBytes: this.o.maxMsgBytes,
    });
    return false;
  }

  private startStep(batch: StepMessage[]): void {
    const request = create(StepRequestSchema, {
      clusterId: this.o.clusterId,
      from: BigInt(this.o.selfId),
      to: BigInt(this.id),
      messages: batch.map(messageToProto),
      incarnation: this.o.incarnation,
    });
    this.inflightSteps++;
    this.inflightMessages += batch.length;
    this.track((signal) =>
      this.client.step(request, { timeoutMs: this.o.requestTimeoutMs, signal }).then(
        () => this.onStepSettled(batch.length, undefined),
        (e: unknown) => this.onStepSettled(batch.length, ConnectError.from(e)),
      ),
    );
  }

  private onStepSettled(messages: number, error: ConnectError | undefined): void {
    this.inflightSteps--;
    this.inflightMessages -= messages;
    assert(this.inflightSteps >= 0 && this.inflightMessages >= 0, "peer: negative in-flight count");
    if (this.state.kind === "closed") {
      this.counts.dropped += messages;
      return;
    }
    if (error === undefined) {
      this.counts.sent += messages;
      this.counts.steps++;
      this.dropReported = false;
      if (this.state.kind === "probing") this.setState({ kind: "active" });
      // In backoff, this is a call from before the failure that got through late: the link still failed,
      // so the timer keeps running.
    } else {
      this.counts.dropped += messages;
      this.onCallFailed(error);
    }
    this.schedulePump();
  }

  private onCallFailed(error: ConnectError): void {
    this.counts.failures++;
    this.notify(() => this.o.onUnreachable(this.id));
    // Start the next attempt on a fresh connection unless the peer itself answered with an error. A
    // connection attempt to a host that drops packets hangs until the OS gives up (minutes), and an
    // established connection to a peer that restarted or stalled can keep swallowing calls until a
    // PING notices; every call would wait on either. Aborting fails the other calls in flight too,
    // which is right: the link is going into backoff anyway.
    if (transportFailureCodes.has(error.code)) this.session.abort(error);
    // In backoff already: a straggler of the failed pipeline; the outage is known and the wait stands.
    if (this.state.kind === "probing" || this.state.kind === "active") this.enterBackoff(error);
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
    this.track((signal) =>
      this.client.installSnapshot(snapshotRequests(this.o.clusterId, m, this.o.snapshotChunkBytes), { timeoutMs, signal }).then(
        (response) =>
          this.onSnapshotSettled(
            response.accepted ? undefined : new ConnectError("the peer did not accept the snapshot", Code.Aborted),
          ),
        (e: unknown) => this.onSnapshotSettled(ConnectError.from(e)),
      ),
    );
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

  /** Starts a call with its own AbortController and keeps it until it settles, so close() can cancel and await it. */
  private track(start: (signal: AbortSignal) => Promise<void>): void {
    const controller = new AbortController();
    const call = start(controller.signal).finally(() => this.calls.delete(call));
    this.calls.set(call, controller);
  }

  /** Runs a callback of the driver in a later microtask, unless the link is closed by then. */
  private notify(callback: () => void): void {
    queueMicrotask(() => {
      if (this.state.kind !== "closed") callback();
    });
  }
}
