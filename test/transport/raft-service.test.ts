import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport, type Client } from "@connectrpc/connect";
import { crc32c } from "@node-rs/crc32";
import { describe, expect, it } from "vitest";
import { PutResponseSchema, type PipelineResponse } from "../../gen/raftkv/v1/kv_pb.js";
import type { KvUnaryHandlers } from "../../src/rpc/kv-unary.js";
import type { StepRequestSchema } from "../../gen/raftkv/v1/raft_pb.js";
import {
  InstallSnapshotRequestSchema,
  MemberPhase,
  RaftService,
  type ForwardRequestSchema,
  type InstallSnapshotRequest,
} from "../../gen/raftkv/v1/raft_pb.js";
import type { Message, SnapshotRequest } from "../../src/core/index.js";
import { createPrng } from "../../src/lib/prng.js";
import Fastify from "fastify";
import { createRaftServiceImpl, registerRaftService, type ProbeState, type RaftServiceOptions } from "../../src/rpc/raft-service.js";
import { messageToProto, snapshotMetaToProto } from "../../src/transport/index.js";
import { randomStepMessage } from "./random-messages.js";
import { silentLogger } from "../../src/lib/logger.js";

interface Harness {
  client: Client<typeof RaftService>;
  delivered: Message[][];
  snapshots: SnapshotRequest[];
  warnings: object[];
}

const CLUSTER = "cluster-a";
const META = { index: 10, term: 2, conf: { voters: [1, 2, 3], learners: [] } };

/** A Step stream of the given batches (Step is client streaming). */
async function* batches(
  ...requests: MessageInitShape<typeof StepRequestSchema>[]
): AsyncGenerator<MessageInitShape<typeof StepRequestSchema>> {
  yield* requests;
}

function harness(overrides: Partial<RaftServiceOptions> = {}): Harness {
  const h: Omit<Harness, "client"> = { delivered: [], snapshots: [], warnings: [] };
  const impl = createRaftServiceImpl({
    clusterId: CLUSTER,
    selfId: 2,
    isMember: (id) => id === 1 || id === 2 || id === 3,
    checkIncarnation: () => true,
    hasSeen: () => true,
    learnPeerUrl: () => {},
    probeState: () => ({ phase: "running", term: 1, lastIndex: 0, snapshotIndex: 0, incarnation: 1n }),
    deliver: (messages) => void h.delivered.push(messages),
    deliverSnapshot: async (m) => void h.snapshots.push(m),
    snapshotBytesMax: 1024 * 1024,
    logger: {
      info: () => undefined,
      warn: (_msg, fields) => void h.warnings.push({ ...fields }),
      error: (_msg, fields) => void h.warnings.push({ ...fields }),
    },
    ...overrides,
  });
  const transport = createRouterTransport((router) => router.service(RaftService, impl));
  return { ...h, client: createClient(RaftService, transport) };
}

async function codeOf(call: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await call;
  } catch (e) {
    const err = ConnectError.from(e);
    return { code: err.code, message: err.rawMessage };
  }
  throw new Error("the call succeeded, expected an error");
}

function header(
  overrides: Partial<{ clusterId: string; from: bigint; to: bigint; totalBytes: bigint; crc: number }>,
  data: Uint8Array,
): InstallSnapshotRequest {
  return create(InstallSnapshotRequestSchema, {
    payload: {
      case: "header",
      value: {
        clusterId: overrides.clusterId ?? CLUSTER,
        from: overrides.from ?? 1n,
        to: overrides.to ?? 2n,
        term: 2n,
        meta: snapshotMetaToProto(META),
        totalBytes: overrides.totalBytes ?? BigInt(data.byteLength),
        crc32c: overrides.crc ?? crc32c(data),
      },
    },
  });
}

function chunk(offset: number, data: Uint8Array): InstallSnapshotRequest {
  return create(InstallSnapshotRequestSchema, { payload: { case: "chunk", value: { offset: BigInt(offset), data } } });
}

async function* stream(...requests: InstallSnapshotRequest[]): AsyncGenerator<InstallSnapshotRequest> {
  yield* requests;
}

function snapshotData(bytes: number): Uint8Array {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) data[i] = (i * 31 + 7) & 0xff;
  return data;
}

describe("RaftService: Step", () => {
  it("delivers a well-formed batch in order", async () => {
    const h = harness();
    const rng = createPrng(1);
    const messages = Array.from({ length: 20 }, () => randomStepMessage(rng, 1, 2));
    await h.client.step(batches({ clusterId: CLUSTER, from: 1n, to: 2n, messages: messages.map(messageToProto) }));
    expect(h.delivered).toEqual([messages]);
  });

  it("passes the sender's peer URL on once the batch passed every check, and ignores one that is not a URL", async () => {
    const learned: [number, string][] = [];
    const h = harness({ learnPeerUrl: (id, url) => void learned.push([id, url]) });
    await h.client.step(batches({ clusterId: CLUSTER, from: 1n, to: 2n, fromPeerUrl: "http://10.0.0.1:2380" }));
    await h.client.step(batches({ clusterId: CLUSTER, from: 3n, to: 2n, fromPeerUrl: "not a url" }));
    await h.client.step(batches({ clusterId: CLUSTER, from: 3n, to: 2n, fromPeerUrl: "file:///etc/passwd" }));
    await codeOf(h.client.step(batches({ clusterId: "cluster-b", from: 3n, to: 2n, fromPeerUrl: "http://evil:2380" })));
    expect(learned).toEqual([[1, "http://10.0.0.1:2380"]]);
  });

  it("refuses another cluster with FailedPrecondition naming both cluster ids, and logs it", async () => {
    const h = harness();
    const err = await codeOf(h.client.step(batches({ clusterId: "cluster-b", from: 1n, to: 2n })));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.message).toContain('"cluster-a"');
    expect(err.message).toContain('"cluster-b"');
    expect(h.warnings).toEqual([expect.objectContaining({ ourClusterId: "cluster-a", theirClusterId: "cluster-b" })]);
    expect(h.delivered).toEqual([]);
  });

  it("refuses a batch for another node or from a non-member with FailedPrecondition", async () => {
    const h = harness();
    expect(await codeOf(h.client.step(batches({ clusterId: CLUSTER, from: 1n, to: 3n })))).toEqual({
      code: Code.FailedPrecondition,
      message: "request for node 3 reached node 2",
    });
    expect(await codeOf(h.client.step(batches({ clusterId: CLUSTER, from: 9n, to: 2n })))).toEqual({
      code: Code.FailedPrecondition,
      message: 'node 9 is not a member of cluster "cluster-a"',
    });
    expect(h.delivered).toEqual([]);
  });

  it("refuses a batch that claims to come from this node itself", async () => {
    const h = harness();
    expect(await codeOf(h.client.step(batches({ clusterId: CLUSTER, from: 2n, to: 2n })))).toEqual({
      code: Code.FailedPrecondition,
      message: "node 2 does not send requests to itself",
    });
    expect(h.delivered).toEqual([]);
  });

  it("refuses malformed content with InvalidArgument and delivers nothing of the batch", async () => {
    const h = harness();
    const rng = createPrng(2);
    const good = messageToProto(randomStepMessage(rng, 1, 2));
    const cases = [
      { messages: [good, {}], field: "messages[1]" },
      {
        messages: [good, { message: { case: "heartbeat" as const, value: { from: 1n, to: 2n, term: 2n ** 60n } } }],
        field: "messages[1].heartbeat.term",
      },
      { messages: [messageToProto(randomStepMessage(rng, 3, 2))], field: "messages[0].from" },
    ];
    for (const c of cases) {
      const err = await codeOf(h.client.step(batches({ clusterId: CLUSTER, from: 1n, to: 2n, messages: c.messages })));
      expect(err.code).toBe(Code.InvalidArgument);
      expect(err.message).toContain(c.field);
    }
    expect(await codeOf(h.client.step(batches({ clusterId: CLUSTER, from: 0n, to: 2n })))).toMatchObject({ code: Code.InvalidArgument });
    expect(h.delivered).toEqual([]);
  });

  it("answers Unavailable when the driver cannot take the batch", async () => {
    const h = harness({
      deliver: () => {
        throw new Error("stopped");
      },
    });
    expect((await codeOf(h.client.step(batches({ clusterId: CLUSTER, from: 1n, to: 2n })))).code).toBe(Code.Unavailable);
  });
});

describe("RaftService: incarnations and Probe", () => {
  it("refuses, whole, a batch from a member whose incarnation changed (it lost its data)", async () => {
    const known = new Map<number, bigint>([[1, 11n]]);
    const h = harness({ checkIncarnation: (from, incarnation) => known.get(from) === incarnation });
    const rng = createPrng(2);
    const messages = [randomStepMessage(rng, 1, 2)].map(messageToProto);
    await h.client.step(batches({ clusterId: CLUSTER, from: 1n, to: 2n, messages, incarnation: 11n }));
    const err = await codeOf(h.client.step(batches({ clusterId: CLUSTER, from: 1n, to: 2n, messages, incarnation: 12n })));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.message).toMatch(/member 1 lost its data directory/);
    expect(h.delivered).toHaveLength(1);
  });

  it("takes no message while the node is starting, and says so with Unavailable", async () => {
    const h = harness({ probeState: () => ({ phase: "bootstrapping" }) });
    const err = await codeOf(
      h.client.step(batches({ clusterId: CLUSTER, from: 1n, to: 2n, messages: [messageToProto(randomStepMessage(createPrng(3), 1, 2))] })),
    );
    expect(err.code).toBe(Code.Unavailable);
    expect(h.delivered).toEqual([]);
  });

  it("runs forwarded writes through the node's own handlers after the envelope checks, answering each by id, errors included", async () => {
    const ran: string[] = [];
    const refuse = (): never => {
      throw new ConnectError("stale", Code.FailedPrecondition, { "raftkv-error": "stale-sequence" });
    };
    const handlers: KvUnaryHandlers = {
      put: async (request) => {
        ran.push(new TextDecoder().decode(request.key));
        return create(PutResponseSchema, {});
      },
      delete: async () => refuse(),
      txn: async () => refuse(),
      get: async () => refuse(),
      range: async () => refuse(),
    };
    const h = harness({ forwarded: () => ({ handlers, requestTimeoutMs: 1_000 }) });
    const envelope = { clusterId: CLUSTER, from: 1n, to: 2n };
    const put = { id: 7n, request: { case: "put" as const, value: { key: new TextEncoder().encode("k"), value: new Uint8Array([1]) } } };
    const del = { id: 8n, request: { case: "delete" as const, value: { key: new Uint8Array([1]) } } };
    async function* stream(
      ...requests: MessageInitShape<typeof ForwardRequestSchema>[]
    ): AsyncGenerator<MessageInitShape<typeof ForwardRequestSchema>> {
      yield* requests;
    }
    const answers = new Map<bigint, PipelineResponse["response"]>();
    for await (const a of h.client.forward(stream({ ...envelope, request: put }, { ...envelope, request: del })))
      answers.set(a.response?.id ?? 0n, a.response?.response ?? { case: undefined });
    expect(answers.get(7n)?.case).toBe("put");
    expect(ran).toEqual(["k"]);
    // The node's own error, code and reason unchanged: the follower hands it to its client as is.
    const refused = answers.get(8n);
    expect(refused?.case).toBe("error");
    if (refused?.case === "error") {
      expect(refused.value.code).toBe(Code.FailedPrecondition);
      expect(refused.value.reason).toBe("stale-sequence");
    }
    const drain = async (requests: AsyncIterable<MessageInitShape<typeof ForwardRequestSchema>>, client = h.client): Promise<void> => {
      for await (const _ of client.forward(requests)) void _;
    };
    expect((await codeOf(drain(stream({ ...envelope, clusterId: "cluster-b", request: put })))).code).toBe(Code.FailedPrecondition);
    expect((await codeOf(drain(stream({ ...envelope, from: 9n, request: put })))).code).toBe(Code.FailedPrecondition);
    expect(
      (await codeOf(drain(stream({ ...envelope, request: { id: 9n, request: { case: "get", value: { key: new Uint8Array([1]) } } } }))))
        .code,
    ).toBe(Code.InvalidArgument);
    expect(ran).toEqual(["k"]);
    const starting = harness({ probeState: () => ({ phase: "starting" }), forwarded: () => ({ handlers, requestTimeoutMs: 1_000 }) });
    expect((await codeOf(drain(stream({ ...envelope, request: put }), starting.client))).code).toBe(Code.Unavailable);
    expect((await codeOf(drain(stream({ ...envelope, request: put }), harness().client))).code).toBe(Code.Unavailable);
  });

  it("answers Probe with what the node holds in every phase, after the envelope checks", async () => {
    let state: ProbeState = { phase: "starting" };
    const h = harness({ probeState: () => state });
    expect((await h.client.probe({ clusterId: CLUSTER, from: 1n, to: 2n })).phase).toBe(MemberPhase.STARTING);
    state = { phase: "bootstrapping" };
    expect((await h.client.probe({ clusterId: CLUSTER, from: 1n, to: 2n })).phase).toBe(MemberPhase.BOOTSTRAPPING);
    state = { phase: "running", term: 7, lastIndex: 120, snapshotIndex: 100, incarnation: 5n };
    const answer = await h.client.probe({ clusterId: CLUSTER, from: 3n, to: 2n });
    expect([answer.phase, answer.term, answer.lastIndex, answer.snapshotIndex, answer.incarnation]).toEqual([
      MemberPhase.RUNNING,
      7n,
      120n,
      100n,
      5n,
    ]);
    expect(answer.askerUnknown).toBe(false);
    expect((await codeOf(h.client.probe({ clusterId: "cluster-b", from: 1n, to: 2n }))).code).toBe(Code.FailedPrecondition);
    expect((await codeOf(h.client.probe({ clusterId: CLUSTER, from: 9n, to: 2n }))).code).toBe(Code.FailedPrecondition);
  });
});

describe("RaftService: Probe tells the asker whether this node has seen it", () => {
  it("sets asker_unknown from hasSeen of the asking member, and never while not running", async () => {
    const asked: number[] = [];
    let state: ProbeState = { phase: "bootstrapping" };
    const h = harness({
      probeState: () => state,
      hasSeen: (id) => {
        asked.push(id);
        return id === 1;
      },
    });
    expect((await h.client.probe({ clusterId: CLUSTER, from: 3n, to: 2n })).askerUnknown).toBe(false);
    expect(asked).toEqual([]);
    state = { phase: "running", term: 2, lastIndex: 9, snapshotIndex: 0, incarnation: 5n };
    expect((await h.client.probe({ clusterId: CLUSTER, from: 1n, to: 2n })).askerUnknown).toBe(false);
    expect((await h.client.probe({ clusterId: CLUSTER, from: 3n, to: 2n })).askerUnknown).toBe(true);
    expect(asked).toEqual([1, 3]);
  });
});

describe("RaftService: InstallSnapshot", () => {
  it("reassembles chunks, verifies size and CRC-32C, and hands the snapshot over", async () => {
    const h = harness();
    const data = snapshotData(100_000);
    const response = await h.client.installSnapshot(
      stream(header({}, data), chunk(0, data.subarray(0, 40_000)), chunk(40_000, data.subarray(40_000))),
    );
    expect(response.accepted).toBe(true);
    expect(h.snapshots).toHaveLength(1);
    const got = h.snapshots[0];
    expect(got && { ...got, snapshot: { ...got.snapshot, data: undefined } }).toEqual({
      type: "snapshot",
      from: 1,
      to: 2,
      term: 2,
      snapshot: { meta: META, data: undefined },
    });
    // Byte comparison: a deep equal over 100 kB of elements takes a second.
    expect(got && Buffer.from(got.snapshot.data).equals(data)).toBe(true);
  });

  it("accepts an empty snapshot (header only)", async () => {
    const h = harness();
    expect((await h.client.installSnapshot(stream(header({}, new Uint8Array(0))))).accepted).toBe(true);
    expect(h.snapshots[0]?.snapshot.data.byteLength).toBe(0);
  });

  it("refuses bad streams with precise codes and never hands them over", async () => {
    const h = harness();
    const data = snapshotData(50_000);
    const half = 25_000;
    const cases: { requests: InstallSnapshotRequest[]; code: Code; text: string }[] = [
      { requests: [header({ crc: (crc32c(data) ^ 1) >>> 0 }, data), chunk(0, data)], code: Code.InvalidArgument, text: "CRC-32C" },
      { requests: [header({}, data), chunk(0, data.subarray(0, half))], code: Code.InvalidArgument, text: `ended after ${half} of 50000` },
      {
        requests: [header({}, data), chunk(0, data.subarray(0, half)), chunk(half + 1, data.subarray(half + 1))],
        code: Code.InvalidArgument,
        text: "expected 25000",
      },
      {
        requests: [header({}, data), chunk(0, data), chunk(50_000, data.subarray(0, 1))],
        code: Code.InvalidArgument,
        text: "past the announced total",
      },
      { requests: [header({}, data), header({}, data)], code: Code.InvalidArgument, text: "should be a chunk" },
      { requests: [header({}, data), chunk(0, new Uint8Array(0))], code: Code.InvalidArgument, text: "is empty" },
      { requests: [chunk(0, data)], code: Code.InvalidArgument, text: "starts with a header" },
      { requests: [], code: Code.InvalidArgument, text: "empty stream" },
      { requests: [header({ totalBytes: 2n * 1024n * 1024n }, data)], code: Code.ResourceExhausted, text: "exceeds this node's limit" },
      { requests: [header({ totalBytes: 2n ** 60n }, data)], code: Code.InvalidArgument, text: "header.total_bytes" },
      { requests: [header({ clusterId: "other" }, data), chunk(0, data)], code: Code.FailedPrecondition, text: "cluster id mismatch" },
      { requests: [header({ to: 3n }, data), chunk(0, data)], code: Code.FailedPrecondition, text: "reached node 2" },
    ];
    for (const c of cases) {
      const err = await codeOf(h.client.installSnapshot(stream(...c.requests)));
      expect({ code: Code[err.code], text: err.message }).toEqual({ code: Code[c.code], text: expect.stringContaining(c.text) });
    }
    expect(h.snapshots).toEqual([]);
  });

  it("receives one snapshot per sender at a time", async () => {
    let release: () => void = () => undefined;
    const installed = new Promise<void>((resolve) => (release = resolve));
    let entered: () => void = () => undefined;
    const parked = new Promise<void>((resolve) => (entered = resolve));
    const h = harness({
      deliverSnapshot: () => {
        entered();
        return installed;
      },
    });
    const data = snapshotData(1000);
    const first = h.client.installSnapshot(stream(header({}, data), chunk(0, data)));
    // The first stream now holds the slot, parked in deliverSnapshot.
    await parked;
    const second = await codeOf(h.client.installSnapshot(stream(header({}, data), chunk(0, data))));
    expect(second).toEqual({ code: Code.Aborted, message: "a snapshot from node 1 is already being installed" });
    release();
    expect((await first).accepted).toBe(true);
    expect((await h.client.installSnapshot(stream(header({}, data), chunk(0, data)))).accepted).toBe(true);
  });

  it("lets a newer stream from a sender replace one whose end never came (a partition ate it)", async () => {
    const h = harness();
    const data = snapshotData(1000);
    let stall: () => void = () => undefined;
    const stalled = new Promise<void>((resolve) => (stall = resolve));
    async function* cutOff(): AsyncGenerator<InstallSnapshotRequest> {
      yield header({}, data);
      yield chunk(0, data.subarray(0, 100));
      await stalled; // the rest, and the close, never arrive while the test looks
    }
    const first = codeOf(h.client.installSnapshot(cutOff()));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await h.client.installSnapshot(stream(header({}, data), chunk(0, data)))).accepted).toBe(true);
    expect(await first).toEqual({ code: Code.Aborted, message: "the snapshot stream was replaced or cancelled" });
    expect(h.snapshots).toHaveLength(1);
    stall();
  });

  it("answers Unavailable when the driver cannot install the snapshot", async () => {
    const h = harness({ deliverSnapshot: () => Promise.reject(new Error("disk full")) });
    const data = snapshotData(10);
    expect((await codeOf(h.client.installSnapshot(stream(header({}, data), chunk(0, data))))).code).toBe(Code.Unavailable);
  });
});

describe("registerRaftService", () => {
  it("refuses a listener without HTTP/2 and limits that cannot work", async () => {
    const base = {
      clusterId: CLUSTER,
      selfId: 2,
      isMember: () => true,
      checkIncarnation: () => true,
      hasSeen: () => true,
      learnPeerUrl: () => {},
      probeState: () => ({ phase: "running" as const, term: 1, lastIndex: 0, snapshotIndex: 0, incarnation: 1n }),
      deliver: () => undefined,
      deliverSnapshot: async () => undefined,
      snapshotBytesMax: 1024,
      msgBytesMax: 1024,
      logger: silentLogger,
    };
    await expect(registerRaftService(Fastify(), base)).rejects.toThrow(/http2: true/);
    await expect(registerRaftService(Fastify({ http2: true }), { ...base, msgBytesMax: 0 })).rejects.toThrow(/msgBytesMax/);
  });
});
