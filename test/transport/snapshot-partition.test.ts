import * as net from "node:net";
import { afterEach, expect, it } from "vitest";
import type { NodeId, SnapshotRequest } from "../../src/core/index.js";
import { createPeerTransport } from "../../src/transport/index.js";
import { recordingLogger, startPeerServer, waitFor } from "./harness.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

/**
 * A partition that eats everything, closes included: after `cutAfterBytes` bytes from the sender, the
 * connection carries nothing more either way, and neither side learns that the other closed (its
 * socket stays half-open). Connections opened after `heal()` pass normally.
 */
async function partitionProxy(targetPort: number, cutAfterBytes: number): Promise<{ url: string; heal(): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let cutting = true;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    const cutThis = cutting;
    let forwarded = 0;
    let cut = false;
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("error", () => undefined);
    }
    client.on("data", (chunk: Buffer) => {
      if (cut) return;
      if (cutThis && forwarded + chunk.length > cutAfterBytes) {
        upstream.write(chunk.subarray(0, cutAfterBytes - forwarded));
        cut = true;
        return;
      }
      forwarded += chunk.length;
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!cut) client.write(chunk);
    });
    client.on("close", () => {
      if (!cut) upstream.destroy();
    });
    upstream.on("close", () => {
      if (!cut) client.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    heal: () => {
      cutting = false;
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function snapshot(to: NodeId, bytes: number): SnapshotRequest {
  return {
    type: "snapshot",
    from: 1,
    to,
    term: 3,
    snapshot: { meta: { index: 500, term: 3, conf: { voters: [1, 2, 3], learners: [] } }, data: new Uint8Array(bytes).fill(7) },
  };
}

it("a snapshot stream cut by a partition does not block the leader's later snapshots to that node", async () => {
  // Found by review: the follower kept the dead stream's slot for its sender for good (the close
  // never arrived), and refused every later snapshot from that leader as "already being received".
  const follower = await startPeerServer({ id: 2, clusterId: "c", members: [1, 2, 3] });
  cleanups.push(() => follower.close());
  const proxy = await partitionProxy(follower.port, 300_000);
  cleanups.push(() => proxy.close());
  const statuses: boolean[] = [];
  const leader = createPeerTransport({
    clusterId: "c",
    selfId: 1,
    incarnation: 1n,
    peers: new Map([[2, proxy.url]]),
    requestTimeoutMs: 300,
    snapshotChunkBytes: 64 * 1024,
    backoff: { delayMsMin: 20, delayMsMax: 100 },
    onUnreachable: () => undefined,
    onSnapshotStatus: (_id, ok) => void statuses.push(ok),
    logger: recordingLogger(),
  });
  cleanups.push(() => leader.close());

  leader.send([snapshot(2, 1024 * 1024)]);
  await waitFor("the first snapshot fails in the partition", () => statuses.length === 1, 30_000);
  expect(statuses[0]).toBe(false);
  proxy.heal();
  // The leader retries, as the core does after a failed snapshot; the first retry should go through.
  for (let attempt = 0; attempt < 3 && follower.snapshots.length === 0; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    leader.send([snapshot(2, 1024 * 1024)]);
    await waitFor("the retry settles", () => statuses.length === attempt + 2, 30_000);
  }
  expect(follower.snapshots.length).toBe(1);
  expect(statuses.at(-1)).toBe(true);
}, 120_000);
