import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { NodeRole } from "../../gen/raftkv/v1/cluster_pb.js";
import { MembershipPendingError, MembershipRefusedError, NotLeaderError } from "../../src/driver/errors.js";
import { leaderHeader, reasonHeader } from "../../src/rpc/index.js";
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

  it("adds, promotes, updates and removes members through the node, answering with the members after each", async () => {
    const { cluster, node } = createHarness({ node: threeMembers(new FakeNode(1)) });
    const added = await cluster.memberAdd({
      id: 0n,
      name: "node-4",
      peerUrls: ["http://10.0.0.4:2380"],
      clientUrls: ["http://10.0.0.4:2379"],
      learner: true,
    });
    expect(added.member).toMatchObject({ id: 4n, name: "node-4", learner: true, peerUrls: ["http://10.0.0.4:2380"] });
    expect(added.members.map((m) => m.id)).toEqual([1n, 2n, 3n, 4n]);
    const promoted = await cluster.memberPromote({ id: 4n });
    expect(promoted.members.find((m) => m.id === 4n)?.learner).toBe(false);
    const updated = await cluster.memberUpdate({ id: 4n, peerUrls: ["http://10.0.0.44:2380"] });
    expect(updated.members.find((m) => m.id === 4n)).toMatchObject({
      name: "node-4",
      peerUrls: ["http://10.0.0.44:2380"],
      clientUrls: ["http://10.0.0.4:2379"],
    });
    const removed = await cluster.memberRemove({ id: 2n });
    expect(removed.members.map((m) => m.id)).toEqual([1n, 3n, 4n]);
    expect(node.membershipChanges.map((c) => [c.op, c.nodeId])).toEqual([
      ["addLearner", 0],
      ["promote", 4],
      ["update", 4],
      ["remove", 2],
    ]);
  });

  it("refuses malformed membership requests before they reach the node", async () => {
    const { cluster, node } = createHarness({ node: threeMembers(new FakeNode(1)) });
    const cases: [string, Promise<unknown>][] = [
      ["a URL", cluster.memberAdd({ name: "n", peerUrls: ["not a url"] })],
      ["one URL is needed", cluster.memberAdd({ name: "n", peerUrls: [] })],
      ["one URL per port", cluster.memberAdd({ name: "n", peerUrls: ["http://a:1", "http://b:1"] })],
      ["http(s)", cluster.memberAdd({ name: "n", peerUrls: ["ftp://a:1"] })],
      ["needs a name", cluster.memberAdd({ peerUrls: ["http://a:1"] })],
      ["not a member id", cluster.memberRemove({ id: 0n })],
      ["not a member id", cluster.memberPromote({ id: 1n << 60n })],
    ];
    for (const [why, call] of cases) {
      const error = await rejection(call);
      expect(error.code, why).toBe(Code.InvalidArgument);
      expect(error.rawMessage, why).toContain(why);
    }
    expect(node.membershipChanges).toEqual([]);
  });

  it("passes the node's refusals on with their reasons", async () => {
    const { cluster, node } = createHarness({ node: threeMembers(new FakeNode(1)) });
    node.fail = (kind) => (kind === "membership" ? new MembershipRefusedError("node 1 is the last voter") : undefined);
    const refused = await rejection(cluster.memberRemove({ id: 1n }));
    expect([refused.code, refused.metadata.get(reasonHeader), refused.rawMessage]).toEqual([
      Code.FailedPrecondition,
      "membership-refused",
      "node 1 is the last voter",
    ]);
    node.fail = (kind) => (kind === "membership" ? new MembershipPendingError("the change at index 7 is not committed yet") : undefined);
    const pending = await rejection(cluster.memberPromote({ id: 3n }));
    expect([pending.code, pending.metadata.get(reasonHeader)]).toEqual([Code.Unavailable, "membership-pending"]);
    expect(pending.rawMessage).toMatch(/not committed yet; retry shortly/);
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
