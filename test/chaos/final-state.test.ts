import { afterEach, describe, expect, it } from "vitest";
import { encodeCommand } from "../../src/kv/index.js";
import { FakeNode } from "../rpc/fake-node.js";
import { startServer, type TestServer } from "../server/harness.js";
import { compareNodeStates } from "./final-state.js";
import { defaultWorkload } from "./workload.js";

const servers: TestServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

async function nodeWith(entries: [string, string][]): Promise<TestServer> {
  const server = await startServer({ node: new FakeNode(1) });
  servers.push(server);
  for (const [key, value] of entries) {
    server.node.store.apply(
      server.node.store.appliedIndex + 1,
      encodeCommand({ op: { case: "put", value: { key: bytes(`${defaultWorkload.prefix}${key}`), value: bytes(value) } } }),
    );
  }
  return server;
}

describe("compareNodeStates (each node's own store against the final read)", () => {
  it("accepts a node holding exactly the final state, and rejects one whose records differ", async () => {
    const p = defaultWorkload.prefix;
    const final = new Map<string, string | null>([
      [`${p}a`, "1"],
      [`${p}b`, "2"],
      [`${p}c`, null],
    ]);
    const good = await nodeWith([
      ["a", "1"],
      ["b", "2"],
    ]);
    const bad = await nodeWith([
      ["a", "1"],
      ["b", "x"],
    ]);
    const verdict = await compareNodeStates(
      [
        { id: 1, endpoint: good.url },
        { id: 2, endpoint: bad.url },
      ],
      final,
      2,
    );
    expect(verdict.reasons).toEqual([]);
    expect(verdict.violations.map((v) => v.kind)).toEqual(["replica-divergence"]);
    expect(verdict.violations[0]?.message).toContain(
      `node 2's own state at revision 2 differs from the final read: ${p}b: node has x, final read 2`,
    );
  });

  it("says so, instead of judging, when a node answers at another revision", async () => {
    const node = await nodeWith([["a", "1"]]);
    const verdict = await compareNodeStates([{ id: 3, endpoint: node.url }], new Map(), 5);
    expect(verdict.violations).toEqual([]);
    expect(verdict.reasons[0]).toContain("node 3's own state was not compared: it answered at revision 1");
  });
});
