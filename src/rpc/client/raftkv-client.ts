import { randomUUID } from "node:crypto";
import { Agent } from "node:http";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import {
  ClusterService,
  type MemberAddRequestSchema,
  type MemberAddResponse,
  type MemberListRequestSchema,
  type MemberListResponse,
  type MemberPromoteRequestSchema,
  type MemberPromoteResponse,
  type MemberRemoveRequestSchema,
  type MemberRemoveResponse,
  type MemberUpdateRequestSchema,
  type MemberUpdateResponse,
  type StatusResponse,
  type TransferLeadershipRequestSchema,
  type TransferLeadershipResponse,
} from "../../../gen/raftkv/v1/cluster_pb.js";
import {
  KvService,
  type DeleteRequestSchema,
  type DeleteResponse,
  type Event,
  type GetRequestSchema,
  type GetResponse,
  type PutRequestSchema,
  type PutResponse,
  type RangeRequestSchema,
  type RangeResponse,
  type TxnRequestSchema,
  type TxnResponse,
  type WatchRequestSchema,
  type WatchResponse,
} from "../../../gen/raftkv/v1/kv_pb.js";
import { sleep } from "../../lib/sleep.js";
import { errorReason, leaderHeader, reasonContract, type ErrorReason } from "../wire-contract.js";
import { openPipeline, type KvPipeline } from "./pipeline-client.js";
import { SessionPool, type Session } from "./session-pool.js";

export type ClientProtocol = "grpc" | "connect" | "grpc-web";

export interface RaftkvClientOptions {
  /** Client URLs of some or all members, for example http://127.0.0.1:2379. */
  readonly endpoints: readonly string[];
  /** gRPC over HTTP/2 (default), Connect over HTTP/1.1, or gRPC-web over HTTP/1.1. */
  readonly protocol?: ClientProtocol;
  /** A call's whole budget, across retries. Default 10 s. */
  readonly timeoutMs?: number;
  /** The budget of one attempt; a node that does not answer in time is left for the next. Default 3 s. */
  readonly attemptTimeoutMs?: number;
  /** The most attempts of one call. Default 20. */
  readonly attemptsMax?: number;
  /** Backoff between attempts that wait for the cluster (election, overload), doubling from min to max. */
  readonly backoffMinMs?: number;
  readonly backoffMaxMs?: number;
  /** The base of this client's exactly-once session ids. Default a random UUID. */
  readonly clientId?: string;
  /** The most mutations in flight at once (each holds a session). Default 64. */
  readonly sessionsMax?: number;
}

export interface CallOptions {
  readonly signal?: AbortSignal;
}

/**
 * The final failure of a call after its retries. `outcomeUnknown` is true when a mutation may have been
 * applied (an attempt was proposed and its fate never became known); retrying it later with a new
 * request is then not exactly-once.
 */
export class RaftkvCallError extends Error {
  override readonly name = "RaftkvCallError";
  readonly code: Code;
  readonly reason: ErrorReason | undefined;

  constructor(
    override readonly cause: ConnectError,
    readonly outcomeUnknown: boolean,
    readonly endpoint: string,
  ) {
    super(cause.rawMessage);
    this.code = cause.code;
    this.reason = errorReason(cause);
  }
}

export interface EndpointStatus {
  readonly endpoint: string;
  readonly status?: StatusResponse;
  readonly error?: ConnectError;
}

export interface RaftkvClient {
  /** The endpoint calls go to first: the leader once one answered or was named. */
  readonly endpoint: string;
  put(request: MessageInitShape<typeof PutRequestSchema>, options?: CallOptions): Promise<PutResponse>;
  delete(request: MessageInitShape<typeof DeleteRequestSchema>, options?: CallOptions): Promise<DeleteResponse>;
  txn(request: MessageInitShape<typeof TxnRequestSchema>, options?: CallOptions): Promise<TxnResponse>;
  get(request: MessageInitShape<typeof GetRequestSchema>, options?: CallOptions): Promise<GetResponse>;
  range(request: MessageInitShape<typeof RangeRequestSchema>, options?: CallOptions): Promise<RangeResponse>;
  /**
   * The changes of a key or prefix. On a lost connection or a node shutting down, the watch resumes on
   * another endpoint exactly after the last event delivered; it ends with the server's `compacted`
   * message when the history it needs is gone.
   */
  watch(request: MessageInitShape<typeof WatchRequestSchema>, options?: CallOptions): AsyncIterable<WatchResponse>;
  memberList(request: MessageInitShape<typeof MemberListRequestSchema>, options?: CallOptions): Promise<MemberListResponse>;
  /**
   * Membership changes, sent to the leader. Not exactly-once: a change retried after an attempt of
   * unknown outcome may be refused as already made (`membership-refused`); list the members to see.
   */
  memberAdd(request: MessageInitShape<typeof MemberAddRequestSchema>, options?: CallOptions): Promise<MemberAddResponse>;
  memberPromote(request: MessageInitShape<typeof MemberPromoteRequestSchema>, options?: CallOptions): Promise<MemberPromoteResponse>;
  memberRemove(request: MessageInitShape<typeof MemberRemoveRequestSchema>, options?: CallOptions): Promise<MemberRemoveResponse>;
  memberUpdate(request: MessageInitShape<typeof MemberUpdateRequestSchema>, options?: CallOptions): Promise<MemberUpdateResponse>;
  transferLeadership(
    request: MessageInitShape<typeof TransferLeadershipRequestSchema>,
    options?: CallOptions,
  ): Promise<TransferLeadershipResponse>;
  /** Asks every known endpoint for its status, in parallel; one failure does not fail the others. */
  statusAll(options?: CallOptions): Promise<EndpointStatus[]>;
  /**
   * Opens a Pipeline stream (many requests on one stream, answers in any order) to `endpoint`, or to
   * the endpoint calls go to first. It does not retry or follow the leader; see KvPipeline.
   */
  pipeline(endpoint?: string): KvPipeline;
  close(): void;
}

interface Endpoint {
  readonly url: string;
  readonly kv: Client<typeof KvService>;
  readonly cluster: Client<typeof ClusterService>;
  close(): void;
}

/** Learned leader URLs beyond the configured endpoints; the oldest learned is forgotten first. */
const learnedEndpointsMax = 16;
/** Leader hints followed without a pause; more in a row mean the hints are stale (an election). */
const redirectsInARowMax = 3;

/**
 * A client of a raftkv cluster that hides leadership: it sends every call to the endpoint that last
 * worked, follows the `raftkv-leader` hint of a follower, moves to the next endpoint when one is
 * unreachable or stopping, and backs off while the cluster elects a leader or sheds load. Mutations
 * carry an exactly-once session (client id, sequence) that stays the same across every retry.
 */
export function createRaftkvClient(options: RaftkvClientOptions): RaftkvClient {
  return new RaftkvClientImpl(options);
}

/** What one attempt passes to a Connect call: the caller's signal and the attempt's own deadline. */
interface AttemptOptions {
  readonly signal?: AbortSignal;
  readonly timeoutMs: number;
}

type Attempt<T> = (endpoint: Endpoint, options: AttemptOptions) => Promise<T>;

class RaftkvClientImpl implements RaftkvClient {
  private readonly endpoints: Endpoint[] = [];
  private readonly configured: number;
  private current = 0;
  private readonly sessions: SessionPool;
  private readonly protocol: ClientProtocol;
  private readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly attemptsMax: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;

  constructor(options: RaftkvClientOptions) {
    const urls = [...new Set(options.endpoints.map(normalizeEndpoint))];
    if (urls.length === 0) throw new RangeError("at least one endpoint is needed");
    this.protocol = options.protocol ?? "grpc";
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.attemptTimeoutMs = options.attemptTimeoutMs ?? 3_000;
    this.attemptsMax = options.attemptsMax ?? 20;
    this.backoffMinMs = options.backoffMinMs ?? 25;
    this.backoffMaxMs = options.backoffMaxMs ?? 1_000;
    const sessionsMax = options.sessionsMax ?? 64;
    this.sessions = new SessionPool(options.clientId ?? randomUUID(), sessionsMax, sessionsMax * 1_000);
    for (const url of urls) this.endpoints.push(this.open(url));
    this.configured = urls.length;
  }

  get endpoint(): string {
    return this.at(this.current).url;
  }

  put(request: MessageInitShape<typeof PutRequestSchema>, options?: CallOptions): Promise<PutResponse> {
    return this.mutate(request, options, (e, o, session) => e.kv.put({ ...request, ...session }, o));
  }

  delete(request: MessageInitShape<typeof DeleteRequestSchema>, options?: CallOptions): Promise<DeleteResponse> {
    return this.mutate(request, options, (e, o, session) => e.kv.delete({ ...request, ...session }, o));
  }

  txn(request: MessageInitShape<typeof TxnRequestSchema>, options?: CallOptions): Promise<TxnResponse> {
    return this.mutate(request, options, (e, o, session) => e.kv.txn({ ...request, ...session }, o));
  }

  get(request: MessageInitShape<typeof GetRequestSchema>, options?: CallOptions): Promise<GetResponse> {
    return this.call(false, options, (e, o) => e.kv.get(request, o));
  }

  range(request: MessageInitShape<typeof RangeRequestSchema>, options?: CallOptions): Promise<RangeResponse> {
    return this.call(false, options, (e, o) => e.kv.range(request, o));
  }

  memberList(request: MessageInitShape<typeof MemberListRequestSchema>, options?: CallOptions): Promise<MemberListResponse> {
    return this.call(false, options, (e, o) => e.cluster.memberList(request, o));
  }

  memberAdd(request: MessageInitShape<typeof MemberAddRequestSchema>, options?: CallOptions): Promise<MemberAddResponse> {
    return this.call(true, options, (e, o) => e.cluster.memberAdd(request, o));
  }

  memberPromote(request: MessageInitShape<typeof MemberPromoteRequestSchema>, options?: CallOptions): Promise<MemberPromoteResponse> {
    return this.call(true, options, (e, o) => e.cluster.memberPromote(request, o));
  }

  memberRemove(request: MessageInitShape<typeof MemberRemoveRequestSchema>, options?: CallOptions): Promise<MemberRemoveResponse> {
    return this.call(true, options, (e, o) => e.cluster.memberRemove(request, o));
  }

  memberUpdate(request: MessageInitShape<typeof MemberUpdateRequestSchema>, options?: CallOptions): Promise<MemberUpdateResponse> {
    return this.call(true, options, (e, o) => e.cluster.memberUpdate(request, o));
  }

  transferLeadership(
    request: MessageInitShape<typeof TransferLeadershipRequestSchema>,
    options?: CallOptions,
  ): Promise<TransferLeadershipResponse> {
    return this.call(false, options, (e, o) => e.cluster.transferLeadership(request, o));
  }

  async statusAll(options?: CallOptions): Promise<EndpointStatus[]> {
    return Promise.all(
      this.endpoints.map(async (endpoint): Promise<EndpointStatus> => {
        const callOptions = { timeoutMs: this.attemptTimeoutMs, ...(options?.signal === undefined ? {} : { signal: options.signal }) };
        try {
          return { endpoint: endpoint.url, status: await endpoint.cluster.status({}, callOptions) };
        } catch (error) {
          return { endpoint: endpoint.url, error: ConnectError.from(error) };
        }
      }),
    );
  }

  async *watch(request: MessageInitShape<typeof WatchRequestSchema>, options?: CallOptions): AsyncIterable<WatchResponse> {
    // Where to resume: the revision of the last event delivered, skipping the events of that revision
    // already delivered (a revision's events may span two messages; every node orders them alike).
    let resumeRevision = request.startRevision ?? 0n;
    let deliveredAtResume = 0;
    let confirmed = false;
    let failures = 0;
    const callOptions = options?.signal === undefined ? {} : { signal: options.signal };
    while (true) {
      const endpoint = this.at(this.current);
      try {
        let skip = deliveredAtResume;
        for await (const message of endpoint.kv.watch({ ...request, startRevision: resumeRevision }, callOptions)) {
          failures = 0;
          if (message.kind.case === "compacted") {
            yield message;
            return;
          }
          if (message.kind.case !== "events") break; // canceled: the node stops or restored a snapshot; resume elsewhere
          if (resumeRevision === 0n) resumeRevision = (message.header?.revision ?? 0n) + 1n;
          const fresh: Event[] = [];
          for (const event of message.kind.value.events) {
            const revision = event.kv?.modRevision ?? 0n;
            if (revision === resumeRevision && skip > 0) {
              skip--;
              continue;
            }
            if (revision !== resumeRevision) {
              resumeRevision = revision;
              deliveredAtResume = 0;
            }
            deliveredAtResume++;
            fresh.push(event);
          }
          if (fresh.length === 0 && confirmed) continue;
          confirmed = true;
          message.kind.value.events = fresh;
          yield message;
        }
      } catch (error) {
        if (options?.signal?.aborted === true) return;
        const connectError = ConnectError.from(error);
        if (classify(connectError) === "fatal" || ++failures >= this.attemptsMax) {
          throw new RaftkvCallError(connectError, false, endpoint.url);
        }
      }
      if (options?.signal?.aborted === true) return;
      this.current = (this.current + 1) % this.endpoints.length;
      await sleep(this.backoff(failures), options?.signal);
    }
  }

  pipeline(endpoint?: string): KvPipeline {
    const index = endpoint === undefined ? this.current : this.learn(endpoint);
    if (index === undefined) throw new RangeError(`not an endpoint URL: ${JSON.stringify(endpoint)}`);
    const target = this.at(index);
    return openPipeline(target.url, target.kv);
  }

  close(): void {
    for (const endpoint of this.endpoints) endpoint.close();
  }

  private async mutate<T>(
    request: { clientId?: string; sequence?: bigint },
    options: CallOptions | undefined,
    attempt: (endpoint: Endpoint, options: AttemptOptions, session: Partial<Session>) => Promise<T>,
  ): Promise<T> {
    // A caller that manages its own session keeps it; otherwise every attempt of this call shares one.
    if (request.clientId !== undefined && request.clientId !== "") {
      return this.call(true, options, (e, o) => attempt(e, o, {}));
    }
    const session = await this.sessions.acquire();
    try {
      return await this.call(true, options, (e, o) => attempt(e, o, session));
    } finally {
      this.sessions.release(session);
    }
  }

  private async call<T>(mutation: boolean, options: CallOptions | undefined, attempt: Attempt<T>): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    let outcomeUnknown = false;
    let waits = 0;
    let redirectsInARow = 0;
    let last: { error: ConnectError; endpoint: string } | undefined;
    // A function, not a narrowed property: the signal can abort while an attempt is awaited.
    const cancelled = (): boolean => options?.signal?.aborted === true;
    for (let n = 0; n < this.attemptsMax; n++) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const index = this.current;
      const endpoint = this.at(index);
      // The attempt's deadline travels to the server (grpc-timeout / connect-timeout-ms), which then
      // stops waiting too; a node that does not answer in time is left for the next one.
      const timeoutMs = Math.min(remaining, this.attemptTimeoutMs);
      if (cancelled()) {
        // Cancelled between attempts: nothing new was sent, so only earlier attempts may have applied.
        throw new RaftkvCallError(new ConnectError("the call was cancelled", Code.Canceled), mutation && outcomeUnknown, endpoint.url);
      }
      try {
        return await attempt(endpoint, options?.signal === undefined ? { timeoutMs } : { signal: options.signal, timeoutMs });
      } catch (error) {
        const connectError = ConnectError.from(error);
        // Counted before the cancellation check: a mutation cancelled mid-attempt may already have been
        // proposed, and reporting it as certainly not applied would invite a blind retry.
        if (mutation && mayHaveApplied(connectError)) outcomeUnknown = true;
        if (cancelled()) throw new RaftkvCallError(connectError, mutation && outcomeUnknown, endpoint.url);
        last = { error: connectError, endpoint: endpoint.url };
        const action = classify(connectError);
        if (action === "fatal") break;
        if (action === "redirect") {
          const target = this.learn(connectError.metadata.get(leaderHeader) ?? "");
          if (target !== undefined) this.current = target;
          // Hints can be stale during an election (two nodes naming each other): follow a few at
          // once, then wait for the cluster to settle.
          if (target !== undefined && target !== index && redirectsInARow++ < redirectsInARowMax) continue;
        } else {
          redirectsInARow = 0;
        }
        if (action === "next-endpoint" && this.current === index) this.current = (index + 1) % this.endpoints.length;
        await sleep(Math.min(this.backoff(waits++), Math.max(0, deadline - Date.now())), options?.signal);
      }
    }
    const error = last?.error ?? new ConnectError("the call's deadline passed before any attempt", Code.DeadlineExceeded);
    throw new RaftkvCallError(error, mutation && outcomeUnknown, last?.endpoint ?? this.endpoint);
  }

  /** The index of `url` among the endpoints, adding it (a leader not configured) when new; undefined for a malformed URL. */
  private learn(url: string): number | undefined {
    let normalized: string;
    try {
      normalized = normalizeEndpoint(url);
    } catch {
      return undefined;
    }
    const known = this.endpoints.findIndex((e) => e.url === normalized);
    if (known >= 0) return known;
    if (this.endpoints.length - this.configured >= learnedEndpointsMax) {
      const [forgotten] = this.endpoints.splice(this.configured, 1);
      forgotten?.close();
    }
    this.endpoints.push(this.open(normalized));
    return this.endpoints.length - 1;
  }

  private at(index: number): Endpoint {
    const endpoint = this.endpoints[index] ?? this.endpoints[0];
    if (endpoint === undefined) throw new RangeError("the client has no endpoints");
    return endpoint;
  }

  private backoff(waits: number): number {
    const ceiling = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** Math.min(waits, 20));
    // Jitter spreads the retries of many clients after a leader change.
    return ceiling / 2 + Math.random() * (ceiling / 2);
  }

  private open(url: string): Endpoint {
    let transport: Transport;
    let close: () => void;
    if (this.protocol === "grpc") {
      const sessionManager = new Http2SessionManager(url, {
        pingIntervalMs: 10_000,
        pingTimeoutMs: 5_000,
        idleConnectionTimeoutMs: 60_000,
      });
      transport = createGrpcTransport({ baseUrl: url, sessionManager });
      close = () => sessionManager.abort();
    } else {
      const agent = new Agent({ keepAlive: true, maxSockets: 64 });
      const create = this.protocol === "connect" ? createConnectTransport : createGrpcWebTransport;
      transport = create({ baseUrl: url, httpVersion: "1.1", nodeOptions: { agent } });
      close = () => agent.destroy();
    }
    return { url, kv: createClient(KvService, transport), cluster: createClient(ClusterService, transport), close };
  }
}

type Action = (typeof reasonContract)[ErrorReason]["action"];

/** What to do after a failed attempt. Only failures where nothing is wrong with the request are retried. */
function classify(error: ConnectError): Action {
  // A node that ran out of time (partitioned, overloaded, a deposed leader that has not noticed yet)
  // is the wrong node to wait on again.
  if (error.code === Code.DeadlineExceeded) return "next-endpoint";
  const reason = errorReason(error);
  if (reason === undefined) {
    // No raftkv reason: the failure came from the network or the client itself. connect-node reports
    // a refused connection as Unavailable, a reset one as Aborted ("read ECONNRESET"), and a stream
    // broken by a dying server as Canceled ("stream closed with error code CANCEL"); a caller's own
    // cancellation never gets here (checked before classifying). All are the node's fault, not the
    // request's: try the next node. Mutations keep their session, so a retry applies at most once.
    const network =
      error.code === Code.Unavailable || error.code === Code.Aborted || error.code === Code.Canceled || error.code === Code.Unknown;
    return network ? "next-endpoint" : "fatal";
  }
  const action = reasonContract[reason].action;
  // A not-leader answer from a node that knows no leader names nobody to go to.
  if (action === "redirect" && error.metadata.get(leaderHeader) === null) return "backoff";
  return action;
}

/** False only when the server said the request was not proposed (wire-contract.ts). */
function mayHaveApplied(error: ConnectError): boolean {
  const reason = errorReason(error);
  return reason === undefined || !reasonContract[reason].notApplied;
}

export function normalizeEndpoint(url: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(url) ? url : `http://${url}`;
  const parsed = new URL(withScheme);
  return `${parsed.protocol}//${parsed.host}`;
}
