import { describe, expect, it } from "vitest";
import { createMetrics, type NodeSample } from "../../src/metrics/index.js";

async function exposition(metrics: ReturnType<typeof createMetrics>): Promise<string> {
  return (await metrics.render()).body;
}

const sample: NodeSample = {
  matchIndex: undefined,
  lastIndex: 10,
  pendingProposals: 0,
  pendingReads: 0,
  keys: 0,
  dataBytes: 0,
  sessions: 0,
  storageStalled: false,
};

describe("raftkv metrics", () => {
  it("counts a leader change only when another node leads, and says whether a leader is known", async () => {
    const metrics = createMetrics({ processMetrics: false });
    for (const leader of [0, 1, 1, 0, 1, 2, 0]) metrics.raftState("follower", 3, leader);
    const text = await exposition(metrics);
    // 0 -> 1 (first leader), 1 again after an election without a winner is no change, 1 -> 2 is one.
    expect(text).toMatch(/^raftkv_raft_leader_changes_total 2$/m);
    expect(text).toMatch(/^raftkv_raft_has_leader 0$/m);
  });

  it("shows each follower's lag on the leader only, and the sampled gauges", async () => {
    const metrics = createMetrics({ processMetrics: false });
    metrics.sample({
      ...sample,
      matchIndex: new Map([
        [1, 10],
        [2, 7],
        [3, 0],
      ]),
      pendingProposals: 4,
      keys: 12,
      dataBytes: 4096,
      storageStalled: true,
    });
    let text = await exposition(metrics);
    expect(text).toMatch(/^raftkv_follower_lag_entries\{peer="2"\} 3$/m);
    expect(text).toMatch(/^raftkv_follower_lag_entries\{peer="3"\} 10$/m);
    expect(text).toMatch(/^raftkv_follower_match_index\{peer="2"\} 7$/m);
    expect(text).toMatch(/^raftkv_proposals_pending 4$/m);
    expect(text).toMatch(/^raftkv_kv_keys 12$/m);
    expect(text).toMatch(/^raftkv_kv_bytes 4096$/m);
    expect(text).toMatch(/^raftkv_storage_stalled 1$/m);
    // Deposed: the per-follower series disappear rather than freeze at their last values.
    metrics.sample(sample);
    text = await exposition(metrics);
    expect(text).not.toMatch(/raftkv_follower_lag_entries\{/);
    expect(text).toMatch(/^raftkv_storage_stalled 0$/m);
  });
});
