import { create } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterService, ClusterStatusResponseSchema, NodeRole } from "../../gen/raftkv/v1/cluster_pb.js";
import { KvService } from "../../gen/raftkv/v1/kv_pb.js";
import { clusterRates, counterSamples, leaderOf, renderCluster } from "../../src/page/cluster-view.js";
import { startServer, type TestServer } from "./harness.js";

/**
 * ClusterStatus and the cluster page's logic, in process: a one-member app answers with its own status,
 * counts successful writes and reads as /metrics does, and serves the page shell; the view turns two
 * answers into rates and a table (the browser test in test/e2e covers a real cluster).
 */

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(async () => {
  await server.close();
});

describe("ClusterService.ClusterStatus", () => {
  it("reports the member with its write and read counters and the leader it saw", async () => {
    const client = createClient(ClusterService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const kv = createClient(KvService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    await kv.put({ key: new TextEncoder().encode("a"), value: new TextEncoder().encode("1") });
    await kv.get({ key: new TextEncoder().encode("a") });
    await kv.get({ key: new TextEncoder().encode("a") });
    const answer = await client.clusterStatus({});
    expect(answer.members).toHaveLength(1);
    const status = answer.members[0]?.status;
    expect(status?.writesTotal).toBe(1n);
    expect(status?.readsTotal).toBe(2n);
    expect(status?.role).toBe(NodeRole.LEADER);
    // The fake node leads in term 3 from the start: the first change recorded is that leader.
    expect(answer.leaderChanges.map((c) => [c.term, c.leader])).toEqual([[3n, 1n]]);
  });

  it("serves the page shell at /, or says how to build the script when it is missing", async () => {
    const response = await fetch(`${server.url}/`);
    expect([200, 503]).toContain(response.status);
    if (response.status === 200) expect(await response.text()).toContain('<script type="module" src="/cluster-page.js">');
    else expect(await response.text()).toContain("npm run build");
  });
});

describe("the cluster page's view", () => {
  const answer = (writes: [bigint, bigint, bigint], leaderLast = 10n) =>
    create(ClusterStatusResponseSchema, {
      members: [1n, 2n, 3n].map((id, i) => ({
        member: { id, name: `node-${id}` },
        ...(id === 3n
          ? { error: "connect ECONNREFUSED" }
          : {
              status: {
                id,
                name: `node-${id}`,
                role: id === 1n ? NodeRole.LEADER : NodeRole.FOLLOWER,
                term: 5n,
                leader: 1n,
                lastLogIndex: id === 1n ? leaderLast : 7n,
                writesTotal: writes[i] ?? 0n,
                readsTotal: 0n,
                progress:
                  id === 1n
                    ? [
                        { id: 1n, matchIndex: leaderLast },
                        { id: 2n, matchIndex: 7n },
                        { id: 3n, matchIndex: 2n },
                      ]
                    : [],
              },
            }),
      })),
    });

  it("sums per-member rates, ignoring members missing from either answer or whose counters restarted", () => {
    const before = counterSamples(answer([10n, 50n, 0n]), 0);
    const after = counterSamples(answer([30n, 40n, 0n]), 2_000);
    expect(clusterRates(before, after)).toEqual({ writesPerSecond: 10, readsPerSecond: 0 });
  });

  it("names the leader, shows each follower's lag from the leader's progress, and an unreachable member", () => {
    const a = answer([0n, 0n, 0n]);
    expect(leaderOf(a)?.id).toBe(1n);
    const html = renderCluster(a, undefined, 0);
    expect(html).toContain('data-leader-id="1"');
    expect(html).toMatch(/data-member-id="2" data-role="follower">.*<td class="lag">3<\/td>/);
    expect(html).toContain('data-member-id="3" data-role="unreachable"');
    expect(html).toContain("connect ECONNREFUSED");
  });
});
