/**
 * Throughput of one peer link: a PeerTransport in this process streams append messages carrying 1 KiB
 * entries to a RaftService in a child process (its own event loop, as a real peer would have), over h2c
 * on loopback. Prints messages/s and MB/s of entry payload acknowledged by the receiver, for one entry
 * per message (message-rate bound) and for batched appends (byte-rate bound), and how many appends the
 * receiver saw out of order (pipelined calls may overtake each other).
 *
 *   npm run bench:transport                      # 5 s per case
 *   BENCH_SECONDS=10 npm run bench:transport
 *
 * Numbers, never assertions: they depend on the machine and on what else runs on it.
 */
import Fastify from "fastify";
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Entry, Message } from "../src/core/index.js";
import { registerRaftService } from "../src/rpc/raft-service.js";
import { createPeerTransport } from "../src/transport/index.js";

const CLUSTER = "bench";
const ENTRY_BYTES = 1024;
const MAX_MSG_BYTES = 4 * 1024 * 1024;

interface ReceiverReport {
  readonly appends: number;
  readonly outOfOrder: number;
  /** CPU time (user + system) the receiver process used since the previous report. */
  readonly cpuMicros: number;
}

async function receiver(): Promise<void> {
  const app = Fastify({ http2: true, forceCloseConnections: true });
  let appends = 0;
  let outOfOrder = 0;
  let lastPrev = -1;
  await registerRaftService(app, {
    clusterId: CLUSTER,
    selfId: 2,
    isMember: (id) => id === 1,
    checkIncarnation: () => true,
    hasSeen: () => true,
    learnPeerUrl: () => {},
    probeState: () => ({ phase: "running", term: 1, lastIndex: 0, snapshotIndex: 0, incarnation: 1n }),
    deliver: (messages) => {
      for (const m of messages) {
        if (m.type !== "append") continue;
        appends++;
        if (m.prevIndex < lastPrev) outOfOrder++;
        lastPrev = Math.max(lastPrev, m.prevIndex);
      }
    },
    deliverSnapshot: async () => undefined,
    snapshotBytesMax: 0,
    msgBytesMax: MAX_MSG_BYTES,
    logger: {
      info: () => undefined,
      warn: (msg, fields) => console.error(msg, fields),
      error: (msg, fields) => console.error(msg, fields),
    },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  process.send?.({ port: address.port });
  let cpu = process.cpuUsage();
  process.on("message", (msg: { cmd: string }) => {
    if (msg.cmd === "report") {
      const used = process.cpuUsage(cpu);
      cpu = process.cpuUsage();
      const report: ReceiverReport = { appends, outOfOrder, cpuMicros: used.user + used.system };
      process.send?.({ report });
      appends = 0;
      outOfOrder = 0;
      lastPrev = -1;
    } else if (msg.cmd === "exit") {
      void app.close().then(() => process.exit(0));
    }
  });
}

interface Case {
  readonly name: string;
  readonly entriesPerMessage: number;
  /** Unacknowledged messages kept in the link, like a leader's inflight window (the core allows 256 appends, 32 MiB). */
  readonly outstandingMax: number;
}

async function sender(): Promise<void> {
  const seconds = Number(process.env["BENCH_SECONDS"] ?? "5");
  const child = fork(fileURLToPath(import.meta.url), ["receiver"], { stdio: "inherit" });
  const port = await new Promise<number>((resolve) => child.once("message", (m: { port: number }) => resolve(m.port)));
  const report = () =>
    new Promise<ReceiverReport>((resolve) => {
      child.once("message", (m: { report: ReceiverReport }) => resolve(m.report));
      child.send({ cmd: "report" });
    });

  const cases: Case[] = [
    { name: "1 entry per message", entriesPerMessage: 1, outstandingMax: 2048 },
    { name: "64 entries per message", entriesPerMessage: 64, outstandingMax: 256 },
  ];
  const payload = new Uint8Array(ENTRY_BYTES).fill(7);
  console.log(
    `transport bench: one link over h2c on 127.0.0.1, ${ENTRY_BYTES}-byte entries, ${seconds} s per case, node ${process.version}`,
  );
  for (const c of cases) {
    let unreachable = 0;
    const t = createPeerTransport({
      clusterId: CLUSTER,
      selfId: 1,
      incarnation: 1n,
      peers: new Map([[2, `http://127.0.0.1:${port}`]]),
      msgBytesMax: MAX_MSG_BYTES,
      onUnreachable: () => void unreachable++,
      onSnapshotStatus: () => undefined,
      logger: { info: () => undefined, warn: (m, f) => console.error(m, f), error: (m, f) => console.error(m, f) },
    });
    let index = 0;
    const nextAppend = (): Message => {
      const entries: Entry[] = Array.from({ length: c.entriesPerMessage }, (_, i) => ({
        term: 1,
        index: index + 1 + i,
        type: "normal",
        data: payload,
      }));
      const m: Message = { type: "append", from: 1, to: 2, term: 1, prevIndex: index, prevTerm: 1, entries, commit: index };
      index += c.entriesPerMessage;
      return m;
    };
    // Keep the link busy without overflowing its queue: refill up to outstandingMax unacknowledged messages.
    const outstandingMax = c.outstandingMax;
    const stop = { at: 0, done: false };
    const refill = (): void => {
      if (stop.done) return;
      const s = t.stats().get(2);
      const outstanding = s === undefined ? 0 : s.queued + s.inflight;
      const batch: Message[] = [];
      for (let i = outstanding; i < outstandingMax; i++) batch.push(nextAppend());
      t.send(batch);
      setImmediate(refill);
    };
    refill();
    // Warm-up: connection, JIT.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await report();
    const before = t.stats().get(2);
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const after = t.stats().get(2);
    const elapsed = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    stop.done = true;
    const received = await report();
    await t.close();
    if (before === undefined || after === undefined) throw new Error("no stats");
    const messages = after.sent - before.sent;
    const steps = after.steps - before.steps;
    const mb = (messages * c.entriesPerMessage * ENTRY_BYTES) / 1e6;
    console.log(
      `${c.name.padEnd(24)} ${(messages / elapsed).toFixed(0).padStart(8)} msg/s  ${(mb / elapsed).toFixed(1).padStart(7)} MB/s  ` +
        `${(messages / Math.max(1, steps)).toFixed(1)} msg/call  dropped ${after.dropped - before.dropped}  failures ${after.failures - before.failures}  ` +
        `out-of-order ${received.outOfOrder}/${received.appends}  unreachable reports ${unreachable}`,
    );
    // CPU per message is steadier than wall-clock rates on a shared machine: it says what one core could carry.
    const perMessage = (micros: number) => (micros / Math.max(1, messages)).toFixed(1);
    console.log(
      `${"".padEnd(24)} CPU per message: sender ${perMessage(cpu.user + cpu.system)} µs, receiver ${perMessage(received.cpuMicros)} µs`,
    );
  }
  child.send({ cmd: "exit" });
}

if (process.argv[2] === "receiver") await receiver();
else await sender();
