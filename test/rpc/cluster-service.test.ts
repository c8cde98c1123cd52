import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { NodeRole } from "../../gen/raftkv/v1/cluster_pb.js";
import { NotLeaderError } from "../../src/driver/errors.js";
import { leaderHeader } from "../../src/rpc/index.js";
import { FakeNode } from "./fake-node.js";
import { bytes, createHarness } from "./harness.js";

function threeMembers(node: FakeNode): FakeNode {
  node.members = [1, 2, 3].map((id) => ({
    id,
    name: `node-${id}`,
    peerUrl: `http://127.0.0.1:${id}2380`,
    clientUrl: `http://127.0.0.1:${id}2379`,
    learner: id === 3,
  }));
  return node;
}

async function rejection(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (error) {
    return ConnectError.from(error);
  }
  throw new Error("expected the call to fail");
}

describe("ClusterService", () => {
  it("reports the answering node's status with its URLs and the store revision", async () => {
    const { cluster, kv, node } = createHarness({ node: threeMembers(new FakeNode(2)) });
    node.role = "follower";
    node.leader = 1;
    await kv.put({ key: bytes("k"), value: bytes("v") });
    const { header, status } = await cluster.status({});
    expect(header).toMatchObject({ revision: 1n, raftTerm: 3n, memberId: 2n });
    expect(status).toMatchObject({
      id: 2n,
      name: "node-2",
      role: NodeRole.FOLLOWER,
      learner: false,
      term: 3n,
      leader: 1n,
      commitIndex: 1n,
      appliedIndex: 1n,
      peerUrls: ["http://127.0.0.1:22380"],
      clientUrls: ["http://127.0.0.1:22379"],
    });
  });

  it("lists members by id, linearizably unless serializable", async () => {
    const { cluster, node } = createHarness({ node: threeMembers(new FakeNode(1)) });
    node.members.reverse();
    const { members } = await cluster.memberList({});
    expect(members.map((m) => [m.id, m.learner])).toEqual([
      [1n, false],
      [2n, false],
      [3n, true],
    ]);
    expect(node.barriers).toBe(1);
    await cluster.memberList({ serializable: true });
    expect(node.barriers).toBe(1);
  });

  it("answers membership changes with Unimplemented and says why", async () => {
    const { cluster } = createHarness();
    for (const call of [
      cluster.memberAdd({ id: 4n, peerUrls: ["http://h:2380"] }),
      cluster.memberPromote({ id: 3n }),
      cluster.memberRemove({ id: 3n }),
    ]) {
      const error = await rejection(call);
      expect(error.code).toBe(Code.Unimplemented);
      expect(error.rawMessage).toContain("--initial-cluster");
    }
  });

  it("transfers leadership to a voter and refuses non-members and learners", async () => {
    const { cluster, node } = createHarness({ node: threeMembers(new FakeNode(1)) });
    expect((await rejection(cluster.transferLeadership({ targetId: 9n }))).code).toBe(Code.InvalidArgument);
    expect((await rejection(cluster.transferLeadership({ targetId: 3n }))).rawMessage).toContain("learner");
    const moved = await cluster.transferLeadership({ targetId: 2n });
    expect(moved.leader).toBe(2n);
    expect(moved.header?.raftTerm).toBe(4n);
    expect(node.leader).toBe(2);
  });

  it("sends a transfer asked of a follower to the leader", async () => {
    const { cluster, node } = createHarness({ node: threeMembers(new FakeNode(2)) });
    node.fail = (kind) => (kind === "transfer" ? new NotLeaderError(1, "http://127.0.0.1:12379") : undefined);
    const error = await rejection(cluster.transferLeadership({ targetId: 0n }));
    expect(error.code).toBe(Code.Unavailable);
    expect(error.metadata.get(leaderHeader)).toBe("http://127.0.0.1:12379");
  });
});
