import * as http2 from "node:http2";
import { afterEach, expect, it } from "vitest";
import { startPeerServer, type PeerServer } from "./harness.js";

let server: PeerServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

it("a peer connection is told it may hold at most 32 streams open at once (each can pin a message buffer)", async () => {
  // Found by review: request bodies that stop mid-way held their buffers, with no bound on streams per
  // connection (HTTP/2's default is unbounded). nghttp2 refuses streams beyond the announced bound.
  server = await startPeerServer({ id: 2, clusterId: "c", members: [1, 2, 3] });
  const session = http2.connect(server.url);
  session.on("error", () => undefined);
  try {
    // The bound comes in a SETTINGS frame right after the session's first one.
    const announced = await new Promise<number | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(session.remoteSettings.maxConcurrentStreams), 5_000);
      const check = (): void => {
        if (session.remoteSettings.maxConcurrentStreams !== 32) return;
        clearTimeout(timer);
        resolve(32);
      };
      session.on("remoteSettings", check);
    });
    expect(announced).toBe(32);
  } finally {
    session.destroy();
  }
});
