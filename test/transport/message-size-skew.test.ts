import { afterEach, expect, it } from "vitest";
import { peerMessageBytes } from "../../src/cli/index.js";
import { requestBytesMaxCeiling } from "../../src/config/index.js";
import type { Message } from "../../src/core/index.js";
import { createPeerTransport } from "../../src/transport/index.js";
import { recordingLogger, startPeerServer, waitFor } from "./harness.js";

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  await Promise.all(cleanups.splice(0).map((c) => c()));
});

it("a follower on the default --request-bytes-max takes the appends of a leader with a larger one (rolling change)", async () => {
  // Found by review: each node read peer messages up to its own flag, so a leader restarted with a
  // larger --request-bytes-max sent batches that default followers refused on every retry. `serve`
  // now reads up to what any allowed setting could send (readMsgBytesMax).
  const leaderBytes = peerMessageBytes(8 * 1024 * 1024);
  const follower = await startPeerServer({
    id: 2,
    clusterId: "c",
    members: [1, 2, 3],
    msgBytesMax: peerMessageBytes(2 * 1024 * 1024),
    readMsgBytesMax: peerMessageBytes(requestBytesMaxCeiling),
  });
  cleanups.push(() => follower.close());
  const leader = createPeerTransport({
    clusterId: "c",
    selfId: 1,
    incarnation: 1n,
    peers: new Map([[2, follower.url]]),
    msgBytesMax: leaderBytes,
    backoff: { delayMsMin: 20, delayMsMax: 100 },
    onUnreachable: () => undefined,
    onSnapshotStatus: () => undefined,
    logger: recordingLogger(),
  });
  cleanups.push(() => leader.close());
  // Three 2 MiB entries in one append: within the leader's budget, beyond the follower's own size.
  const entries = [1, 2, 3].map((i) => ({ term: 2, index: 10 + i, type: "normal" as const, data: new Uint8Array(2 * 1024 * 1024 + 100) }));
  expect(entries.reduce((sum, e) => sum + e.data.byteLength, 0)).toBeGreaterThan(peerMessageBytes(2 * 1024 * 1024));
  const append: Message = { type: "append", from: 1, to: 2, term: 2, prevIndex: 10, prevTerm: 2, entries, commit: 10 };
  leader.send([append]);
  await waitFor("the append arrives", () => follower.delivered.length === 1, 20_000);
  expect(follower.delivered[0]).toMatchObject({ type: "append", prevIndex: 10 });
});
