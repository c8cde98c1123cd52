import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { crc32c } from "@node-rs/crc32";
import { afterEach, describe, expect, it } from "vitest";
import { RaftService } from "../../gen/raftkv/v1/raft_pb.js";
import type { Message, NodeId, SnapshotRequest } from "../../src/core/index.js";
import { createPeerTransport, snapshotMetaToProto, type PeerTransport, type PeerTransportOptions } from "../../src/transport/index.js";
import {
  numbered,
  recordingLogger,
  seqs,
  startPeerServer,
  startProxy,
  startSilentServer,
  waitFor,
  type LogLine,
  type PeerServer,
} from "./harness.js";

const CLUSTER = "test-cluster";
const MEMBERS = [1, 2, 3];

/** Everything a test starts, closed after it whatever happens. */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

interface Events {
  unreachable: { id: NodeId; at: number }[];
  snapshotStatus: { id: NodeId; ok: boolean }[];
  log: LogLine[];
}

function transport(peers: Record<number, string>, overrides: Partial<PeerTransportOptions> = {}): { t: PeerTransport; events: Events } {
  const logger = recordingLogger();
  const events: Events = { unreachable: [], snapshotStatus: [], log: logger.lines };
  const t = createPeerTransport({
    clusterId: CLUSTER,
    selfId: 1,
    incarnation: 1n,
    peers: new Map(Object.entries(peers).map(([id, url]) => [Number(id), url])),
    backoff: { delayMsMin: 20, delayMsMax: 200 },
    onUnreachable: (id) => void events.unreachable.push({ id, at: Date.now() }),
    onSnapshotStatus: (id, ok) => void events.snapshotStatus.push({ id, ok }),
    logger,
    ...overrides,
  });
  cleanups.push(() => t.close());
  return { t, events };
}

async function server(id: NodeId, extra: Partial<Parameters<typeof startPeerServer>[0]> = {}): Promise<PeerServer> {
  const s = await startPeerServer({ id, clusterId: CLUSTER, members: MEMBERS, ...extra });
  cleanups.push(() => s.close());
  return s;
}

function statsOf(t: PeerTransport, id: NodeId) {
  const s = t.stats().get(id);
  if (s === undefined) throw new Error(`no stats for peer ${id}`);
  return s;
}

function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}

function snapshotMessage(to: NodeId, bytes: number): SnapshotRequest {
  const data = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 4096) data[i] = (i / 4096) & 0xff;
  return {
    type: "snapshot",
    from: 1,
    to,
    term: 3,
    snapshot: { meta: { index: 500, term: 3, conf: { voters: MEMBERS, learners: [] } }, data },
  };
}

describe("peer transport over real HTTP/2", () => {
  it("delivers every message in order to each peer, batched and pipelined", async () => {
    const [s2, s3] = await Promise.all([server(2), server(3)]);
    // Small batches force several Step calls in flight at once.
    const { t } = transport({ 2: s2.url, 3: s3.url }, { batchMessagesMax: 50 });
    const total = 3000;
    for (let seq = 0; seq < total; seq += 100) {
      t.send(range(seq, 100).flatMap((n) => [numbered(1, 2, n), numbered(1, 3, n)]));
    }
    await waitFor("all messages delivered", () => s2.delivered.length === total && s3.delivered.length === total);
    await waitFor("all calls answered", () => statsOf(t, 2).inflight === 0);
    expect(seqs(s2.delivered)).toEqual(range(0, total));
    expect(seqs(s3.delivered)).toEqual(range(0, total));
    // Batched: one call per 50 messages, not one per message.
    expect(s2.batches).toBe(total / 50);
    const st = statsOf(t, 2);
    expect(st).toMatchObject({ state: "active", sent: total, steps: total / 50, dropped: 0, failures: 0, queued: 0, inflight: 0 });

    // With the default batch limit, what is queued in one tick goes out in one call.
    const { t: defaults } = transport({ 3: s3.url });
    const before = s3.batches;
    defaults.send(range(total, 1000).map((n) => numbered(1, 3, n)));
    await waitFor("second burst delivered", () => s3.delivered.length === total + 1000);
    expect(s3.batches - before).toBe(1);
    expect(seqs(s3.delivered.slice(total))).toEqual(range(total, 1000));
  });

  it("keeps large pipelined batches in order (HTTP/2 would otherwise interleave and reorder them)", async () => {
    const s2 = await server(2, { msgBytesMax: 256 * 1024 });
    const { t } = transport({ 2: s2.url }, { msgBytesMax: 256 * 1024 });
    const data = new Uint8Array(60 * 1024);
    const appends: Message[] = range(0, 120).map((i) => ({
      type: "append",
      from: 1,
      to: 2,
      term: 1,
      prevIndex: i,
      prevTerm: 1,
      // Batches of varied size, so that a later, smaller call could finish before an earlier one.
      entries: i % 9 === 0 ? [] : [{ term: 1, index: i + 1, type: "normal", data: data.subarray(0, (i % 5) * 15 * 1024) }],
      commit: 0,
    }));
    for (let i = 0; i < appends.length; i += 40) t.send(appends.slice(i, i + 40));
    await waitFor("all appends delivered", () => s2.delivered.length === appends.length);
    expect(s2.delivered.map((m) => (m.type === "append" ? m.prevIndex : -1))).toEqual(range(0, 120));
    expect(s2.batches).toBeGreaterThan(8);
  });

  it("reports a peer that is down, counts what it drops, and resumes when the peer is back", async () => {
    const s2 = await server(2);
    const port = s2.port;
    await s2.close();
    const { t, events } = transport({ 2: s2.url });
    let seq = 0;
    const ticker = setInterval(() => t.send([numbered(1, 2, seq++)]), 10);
    cleanups.push(async () => clearInterval(ticker));

    await waitFor("onUnreachable(2)", () => events.unreachable.length >= 2);
    expect(events.unreachable.every((u) => u.id === 2)).toBe(true);
    const down = statsOf(t, 2);
    expect(down.failures).toBeGreaterThanOrEqual(2);
    // Nothing was written; what was sent meanwhile waits in the bounded queue for the next stream.
    expect(down.queued).toBeGreaterThan(0);
    expect(down.sent).toBe(0);
    // One warning for the outage, not one per failed call.
    expect(events.log.filter((l) => l.msg === "peer unreachable")).toHaveLength(1);

    const back = await server(2, { port });
    await waitFor("delivery resumed", () => back.delivered.length >= 20 && statsOf(t, 2).state === "active");
    // In order after the restart, with nothing delivered twice.
    const got = seqs(back.delivered);
    expect(got).toEqual([...got].sort((a, b) => a - b));
    expect(new Set(got).size).toBe(got.length);
    expect(events.log.some((l) => l.msg === "peer reachable again")).toBe(true);
  });

  it("is refused by a node of another cluster with FailedPrecondition naming both cluster ids", async () => {
    const other = await startPeerServer({ id: 2, clusterId: "other-cluster", members: MEMBERS });
    cleanups.push(() => other.close());
    const { t, events } = transport({ 2: other.url });
    t.send([numbered(1, 2, 1)]);
    await waitFor("onUnreachable(2)", () => events.unreachable.length > 0);
    expect(other.delivered).toEqual([]);
    const warning = events.log.find((l) => l.msg === "peer unreachable");
    expect(warning?.fields).toMatchObject({ peer: 2, code: "FailedPrecondition" });
    expect(warning?.fields["message"]).toMatch(/"other-cluster".*"test-cluster"/);
    expect(other.warnings).toEqual([expect.objectContaining({ ourClusterId: "other-cluster", theirClusterId: CLUSTER })]);

    // The same through a plain gRPC client, to pin the code on the wire.
    const client = createClient(RaftService, createGrpcTransport({ baseUrl: other.url }));
    const err = await client
      .step(
        (async function* () {
          yield { clusterId: CLUSTER, from: 1n, to: 2n };
        })(),
      )
      .then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
    expect(err?.code).toBe(Code.FailedPrecondition);
  });

  it("detects a peer that accepts connections but never answers, without delaying the other peers", async () => {
    const silent = await startSilentServer();
    cleanups.push(() => silent.close());
    const s3 = await server(3);
    // A stream has no deadline: the keepalive PING finds the silent peer.
    const { t, events } = transport({ 2: silent.url, 3: s3.url }, { keepalive: { pingIntervalMs: 200, pingTimeoutMs: 200 } });
    const start = Date.now();
    t.send(range(0, 100).flatMap((n) => [numbered(1, 2, n), numbered(1, 3, n)]));
    await waitFor("peer 3 got everything", () => s3.delivered.length === 100);
    const deliveredAt = Date.now();
    await waitFor("peer 2 reported unreachable", () => events.unreachable.some((u) => u.id === 2));
    const reportedAt = events.unreachable.find((u) => u.id === 2)?.at ?? 0;
    // Peer 3 did not wait for peer 2's deadline.
    expect(deliveredAt).toBeLessThan(reportedAt);
    expect(reportedAt - start).toBeGreaterThanOrEqual(300);
    expect(reportedAt - start).toBeLessThan(3000);
    // "Sent" means written to the connection: at most the one batch handed to the silent connection.
    expect(statsOf(t, 2).failures).toBe(1);
    expect(statsOf(t, 2).sent).toBeLessThanOrEqual(100);
    expect(events.unreachable.some((u) => u.id === 3)).toBe(false);
  });

  it("notices a link that starts dropping packets through the keepalive PING, long before the call deadline", async () => {
    const s2 = await server(2);
    const proxy = await startProxy(s2.port);
    cleanups.push(() => proxy.close());
    const { t, events } = transport({ 2: proxy.url }, { requestTimeoutMs: 30_000, keepalive: { pingIntervalMs: 200, pingTimeoutMs: 200 } });
    t.send([numbered(1, 2, 0)]);
    await waitFor("first message through the proxy", () => s2.delivered.length === 1);

    proxy.blackhole();
    const start = Date.now();
    t.send([numbered(1, 2, 1)]);
    await waitFor("peer 2 reported unreachable", () => events.unreachable.length > 0, 10_000);
    const detectedMs = (events.unreachable[0]?.at ?? 0) - start;
    // PINGs every 200 ms with a 200 ms timeout: well under a second on an idle machine; the bound leaves
    // room for a loaded CI box while staying far below the 30 s call deadline.
    expect(detectedMs).toBeLessThan(5000);
    expect(statsOf(t, 2).failures).toBeGreaterThanOrEqual(1);

    proxy.heal();
    t.send([numbered(1, 2, 2)]);
    await waitFor("delivery after the link healed", () => seqs(s2.delivered).includes(2));
  });

  it("keeps each queue bounded under a flood, dropping the oldest messages", async () => {
    const silent = await startSilentServer();
    cleanups.push(() => silent.close());
    const s3 = await server(3);
    const queueMessagesMax = 200;
    const { t, events } = transport({ 2: silent.url, 3: s3.url }, { queueMessagesMax, requestTimeoutMs: 500 });
    const total = 50_000;
    for (let seq = 0; seq < total; seq += 500) {
      t.send(range(seq, 500).flatMap((n) => [numbered(1, 2, n), numbered(1, 3, n)]));
      const s2 = statsOf(t, 2);
      expect(s2.queued).toBeLessThanOrEqual(queueMessagesMax);
      expect(s2.sent + s2.dropped + s2.queued + s2.inflight).toBe(seq + 500);
    }
    // Dropping told the driver to back off from both peers.
    await waitFor("drops reported", () => events.unreachable.some((u) => u.id === 3) && events.unreachable.some((u) => u.id === 2));

    await waitFor("peer 3 drained", () => statsOf(t, 3).queued === 0 && statsOf(t, 3).inflight === 0);
    const s3stats = statsOf(t, 3);
    // "Sent" means written to the stream; the receiver steps what was written a moment later.
    await waitFor("peer 3 delivered what was sent", () => s3.delivered.length >= s3stats.sent);
    expect(s3stats.sent + s3stats.dropped).toBe(total);
    expect(s3stats.dropped).toBeGreaterThan(0);
    const got = seqs(s3.delivered);
    expect(got.length).toBe(s3stats.sent);
    // Oldest dropped, newest kept: strictly increasing, ending with the very last message.
    expect(got.every((n, i) => i === 0 || n > (got[i - 1] ?? -1))).toBe(true);
    expect(got.at(-1)).toBe(total - 1);
    // The stalled peer holds at most its queue plus the one batch written to its silent connection.
    const s2 = statsOf(t, 2);
    expect(s2.queued).toBeLessThanOrEqual(queueMessagesMax);
    expect(s2.sent).toBeLessThanOrEqual(queueMessagesMax);
  });

  it("streams a snapshot of a few MiB in chunks and reports success", async () => {
    const s2 = await server(2);
    const { t, events } = transport({ 2: s2.url }, { snapshotChunkBytes: 256 * 1024 });
    const m = snapshotMessage(2, 3 * 1024 * 1024 + 12_345);
    t.send([m]);
    // Only one stream at a time: a second snapshot while the first is streaming is dropped.
    t.send([snapshotMessage(2, 1000)]);
    await waitFor("snapshot status", () => events.snapshotStatus.length > 0);
    expect(events.snapshotStatus).toEqual([{ id: 2, ok: true }]);
    expect(s2.snapshots).toHaveLength(1);
    const got = s2.snapshots[0];
    expect(got?.snapshot.meta).toEqual(m.snapshot.meta);
    expect(got?.term).toBe(3);
    expect(got && Buffer.from(got.snapshot.data).equals(m.snapshot.data)).toBe(true);
    expect(statsOf(t, 2)).toMatchObject({ snapshotsSent: 1, snapshotsFailed: 0, dropped: 1 });
  });

  it("reports a snapshot the peer refuses, and the peer refuses a bad checksum", async () => {
    const small = await server(2, { snapshotBytesMax: 1024 * 1024 });
    const { t, events } = transport({ 2: small.url }, { snapshotChunkBytes: 256 * 1024 });
    t.send([snapshotMessage(2, 2 * 1024 * 1024)]);
    await waitFor("snapshot status", () => events.snapshotStatus.length > 0);
    expect(events.snapshotStatus).toEqual([{ id: 2, ok: false }]);
    expect(events.log.find((l) => l.msg === "snapshot send failed")?.fields).toMatchObject({ code: "ResourceExhausted" });

    // A stream whose data does not match the header's CRC-32C, over the real network.
    const client = createClient(RaftService, createGrpcTransport({ baseUrl: small.url }));
    const data = snapshotMessage(2, 900 * 1024).snapshot.data;
    async function* badStream() {
      yield {
        payload: {
          case: "header" as const,
          value: {
            clusterId: CLUSTER,
            from: 1n,
            to: 2n,
            term: 3n,
            meta: snapshotMetaToProto({ index: 500, term: 3, conf: { voters: MEMBERS, learners: [] } }),
            totalBytes: BigInt(data.byteLength),
            crc32c: (crc32c(data) + 1) >>> 0,
          },
        },
      };
      for (let offset = 0; offset < data.byteLength; offset += 300 * 1024) {
        yield { payload: { case: "chunk" as const, value: { offset: BigInt(offset), data: data.subarray(offset, offset + 300 * 1024) } } };
      }
    }
    const err = await client.installSnapshot(badStream()).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(err?.code).toBe(Code.InvalidArgument);
    expect(err?.rawMessage).toContain("CRC-32C");
    expect(small.snapshots).toEqual([]);
  });

  it("follows setPeers, drops messages for unknown peers with a report, and stays silent after close", async () => {
    const [s2, s3] = await Promise.all([server(2), server(3)]);
    const { t, events } = transport({ 2: s2.url });
    t.send([numbered(1, 3, 0)]);
    await waitFor("unknown peer reported", () => events.unreachable.some((u) => u.id === 3));
    t.send([snapshotMessage(3, 10)]);
    await waitFor("snapshot to an unknown peer failed", () => events.snapshotStatus.length === 1);
    expect(events.snapshotStatus).toEqual([{ id: 3, ok: false }]);
    t.send([numbered(3, 2, 0)]);
    expect(events.log.filter((l) => l.level === "error").map((l) => l.fields)).toEqual([{ type: "heartbeat", from: 3, to: 2, self: 1 }]);

    t.setPeers(
      new Map([
        [1, "http://127.0.0.1:1"],
        [3, s3.url],
      ]),
    );
    expect([...t.stats().keys()]).toEqual([3]);
    t.send([numbered(1, 3, 1), numbered(1, 2, 1)]);
    await waitFor("peer 3 reachable after setPeers", () => s3.delivered.length === 1);
    expect(() => t.setPeers(new Map([[4, "not a url"]]))).toThrow(/peer 4/);
    expect([...t.stats().keys()]).toEqual([3]);

    const silent = await startSilentServer();
    cleanups.push(() => silent.close());
    t.setPeers(
      new Map([
        [3, s3.url],
        [2, silent.url],
      ]),
    );
    t.send([numbered(1, 2, 2)]);
    const reports = events.unreachable.length;
    // close() cancels the call hanging on the silent peer and resolves without waiting for its deadline.
    const closing = Date.now();
    await t.close();
    expect(Date.now() - closing).toBeLessThan(1000);
    t.send([numbered(1, 3, 3)]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(events.unreachable.length).toBe(reports);
    expect(s3.delivered.length).toBe(1);
  });
});

describe("peer transport options", () => {
  it("refuses settings that cannot work, naming the setting", () => {
    const base = {
      clusterId: CLUSTER,
      selfId: 1,
      incarnation: 1n,
      peers: new Map<number, string>(),
      onUnreachable: () => undefined,
      onSnapshotStatus: () => undefined,
      logger: recordingLogger(),
    };
    expect(() => createPeerTransport({ ...base, selfId: 0 })).toThrow(/peer id/);
    expect(() => createPeerTransport({ ...base, queueMessagesMax: 0 })).toThrow(/queueMessagesMax/);
    expect(() => createPeerTransport({ ...base, backoff: { delayMsMin: 500, delayMsMax: 100 } })).toThrow(/backoff.delayMsMax/);
    expect(() => createPeerTransport({ ...base, snapshotChunkBytes: 4 * 1024 * 1024 })).toThrow(/snapshotChunkBytes/);
    expect(() => createPeerTransport({ ...base, peers: new Map([[2, "ftp://x"]]) })).toThrow(/http/);
  });
});
