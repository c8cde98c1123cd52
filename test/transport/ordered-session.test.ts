import { Code, ConnectError } from "@connectrpc/connect";
import { EventEmitter } from "node:events";
import type * as http2 from "node:http2";
import { describe, expect, it } from "vitest";
import { orderedSessionManager, type SessionManager } from "../../src/transport/ordered-session.js";

/** A session manager whose streams are bare event emitters the test finishes by hand. */
function fakeSession(): SessionManager & { opened: { path: string; stream: EventEmitter }[] } {
  const opened: { path: string; stream: EventEmitter }[] = [];
  return {
    opened,
    authority: "http://peer",
    request: async (_method: string, path: string) => {
      const stream = new EventEmitter();
      opened.push({ path, stream });
      return stream as unknown as http2.ClientHttp2Stream;
    },
    notifyResponseByteRead: () => undefined,
  };
}

const flush = () => new Promise((resolve) => setImmediate(resolve));

describe("orderedSessionManager", () => {
  it("opens an ordered stream only after the previous one has written its request; others go at once", async () => {
    const inner = fakeSession();
    let closed = false;
    const ordered = orderedSessionManager(inner, (path) => path === "/step", () => closed);
    const first = ordered.request("POST", "/step", {}, {});
    const second = ordered.request("POST", "/step", {}, {});
    const third = ordered.request("POST", "/step", {}, {});
    const snapshot = ordered.request("POST", "/snapshot", {}, {});
    const steps = () => inner.opened.filter((o) => o.path === "/step").map((o) => o.stream);
    await flush();
    expect(steps()).toHaveLength(1);
    expect(inner.opened.filter((o) => o.path === "/snapshot")).toHaveLength(1);

    steps()[0]?.emit("finish");
    await flush();
    expect(steps()).toHaveLength(2);

    // A stream that dies without finishing releases the next one too.
    steps()[1]?.emit("close");
    await flush();
    expect(steps()).toHaveLength(3);
    await Promise.all([first, second, third, snapshot]);

    // After close, a call still waiting for its turn does not open a stream (nor a new connection).
    const fourth = ordered.request("POST", "/step", {}, {});
    closed = true;
    steps()[2]?.emit("finish");
    await expect(fourth).rejects.toEqual(new ConnectError("the peer link is closed", Code.Canceled));
    await expect(ordered.request("POST", "/snapshot", {}, {})).rejects.toThrow(/closed/);
    expect(inner.opened).toHaveLength(4);
  });
});
