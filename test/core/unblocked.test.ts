import { describe, expect, it } from "vitest";
import { waitsForDurability, type Message, type NodeId, type Ready } from "../../src/core/index.js";
import { Network } from "./network.js";

/** What a driver does with a Ready it took by hand: write its entries and hard state. */
function persist(net: Network, id: NodeId, rd: Ready): void {
  net.storage(id).append(rd.entries);
  if (rd.hardState !== undefined) net.storage(id).setHardState(rd.hardState);
}

/**
 * While a node's write is in flight (a Ready handed out, advance() not yet called), takeUnblocked()
 * lets out what promises nothing about its disk: a read never waits behind a write's fsync, and
 * neither does a heartbeat answer. Acknowledgements and votes still wait for the write.
 */
describe("takeUnblocked: what may leave while a write is in flight", () => {
  it("lets a leader start a read round and answer the read while its own write is still being made durable", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const node = net.node(leader);
    const { commit } = net.status(leader);

    node.propose(new TextEncoder().encode("a write whose fsync is slow"));
    const inFlight = node.ready();
    expect(inFlight.entries).toHaveLength(1);
    expect(node.hasReady()).toBe(false);

    node.readIndex(9);
    const first = node.takeUnblocked();
    const heartbeats = first.messages.filter((m) => m.type === "heartbeat");
    expect(heartbeats.map((m) => m.to).sort()).toEqual([1, 2, 3].filter((id) => id !== leader));
    expect(first.readStates).toEqual([]);

    // The followers answer the round (their own Readies run as usual); the leader steps the answers.
    for (const m of heartbeats) net.node(m.to).step(m);
    const answers: Message[] = net.takeQueued().filter((m) => m.to === leader);
    expect(answers.map((m) => m.type)).toEqual(["heartbeatResp", "heartbeatResp"]);
    for (const m of answers) node.step(m);

    // Answered at the commit index from before the write: the write is not committed and the read need not see it.
    expect(node.takeUnblocked().readStates).toEqual([{ requestId: 9, index: commit }]);
    // The write completes; its appends (sent before it, as a leader may) reach the followers and it commits.
    persist(net, leader, inFlight);
    node.advance(inFlight);
    for (const m of inFlight.messages) net.node(m.to).step(m);
    net.deliver();
    expect(net.status(leader).commit).toBe(commit + 1);
  });

  it("keeps a follower's acknowledgement of entries for the next Ready, but lets its heartbeat answer out", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const follower = [1, 2, 3].find((id) => id !== leader) ?? 0;
    net.propose(leader, "first");
    net.hold = (m) => m.to === follower && m.type === "append";
    net.propose(leader, "second");
    const append = net.held.find((m) => m.type === "append");
    expect(append).toBeDefined();
    net.held = [];
    net.hold = () => false;

    const node = net.node(follower);
    node.step(append as Message);
    const inFlight = node.ready();
    expect(inFlight.entries.length).toBeGreaterThan(0);
    expect(inFlight.messages.every((m) => m.type === "appendResp")).toBe(true);

    // Another append and a heartbeat arrive while the entries are being written.
    node.step({ ...(append as Message & { type: "append" }), entries: [] });
    node.step({ type: "heartbeat", from: leader, to: follower, term: net.status(leader).term, commit: 0, readRound: 5 });
    const out = node.takeUnblocked();
    expect(out.messages.map((m) => m.type)).toEqual(["heartbeatResp"]);
    persist(net, follower, inFlight);
    node.advance(inFlight);
    const next = node.ready();
    expect(next.messages.map((m) => m.type)).toEqual(["appendResp"]);
    expect(next.messages.every(waitsForDurability)).toBe(true);
    persist(net, follower, next);
    node.advance(next);
  });
});

describe("waitsForDurability", () => {
  it("holds back exactly acknowledgements, votes and vote requests (each promises what the disk holds)", () => {
    const types: Message["type"][] = [
      "vote",
      "voteResp",
      "append",
      "appendResp",
      "heartbeat",
      "heartbeatResp",
      "snapshot",
      "timeoutNow",
      "readIndex",
      "readIndexResp",
    ];
    const waiting = types.filter((type) => waitsForDurability({ type } as Message));
    expect(waiting).toEqual(["vote", "voteResp", "appendResp"]);
  });
});
