import { describe, expect, it } from "vitest";
import { decodeConfEntry, type ConfState, type NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";
import { expectSameAppliedData, expectStateMachineSafety } from "./safety.js";

const electionTicks = 10;

function followersOf(net: Network, leader: NodeId): NodeId[] {
  return net.ids.filter((id) => id !== leader && net.isUp(id));
}

/** The membership as of what `id` applied: the driver keeps the same, for the snapshots it takes. */
function confAsApplied(net: Network, id: NodeId, initial: ConfState): ConfState {
  let conf = initial;
  for (const entry of net.appliedOf(id)) {
    if (entry.type !== "conf") continue;
    conf = decodeConfEntry(entry.data)?.conf ?? conf;
  }
  return conf;
}

describe("membership changes, one server at a time (thesis 4.1)", () => {
  it("adds a learner that receives the log but neither counts for a quorum nor campaigns", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    net.propose(leader, "before");
    net.addNode(4);
    expect(net.proposeConf(leader, "addLearner", 4)).toMatchObject({ ok: true });
    net.propose(leader, "after");
    expect(net.appliedData(4)).toEqual(["before", "after"]);
    for (const id of net.ids) expect(net.status(id).conf).toEqual({ voters: [1, 2, 3], learners: [4] });

    // The learner acknowledges everything, but with two voters down nothing commits.
    const [f1, f2] = followersOf(net, leader).filter((id) => id !== 4);
    net.crash(f1 as NodeId);
    net.crash(f2 as NodeId);
    const commit = net.status(leader).commit;
    const stuck = net.propose(leader, "no quorum");
    expect(stuck.ok).toBe(true);
    expect(net.status(4).lastIndex).toBe(net.status(leader).lastIndex);
    expect(net.status(leader).commit).toBe(commit);

    // Cut off from everyone for many election timeouts, the learner never campaigns.
    net.isolate(4);
    const mark = net.mark();
    net.tick(4, 5 * electionTicks);
    expect(net.sentSince(mark, "vote")).toEqual([]);
    expect(net.status(4).role).toBe("follower");
  });

  it("promotes a learner only once it has caught up, then counts it for the quorum", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    net.addNode(4);
    net.proposeConf(leader, "addLearner", 4);
    net.isolate(4);
    for (const c of ["a", "b", "c"]) net.propose(leader, c);

    const refused = net.proposeConf(leader, "promote", 4, 1);
    expect(refused).toMatchObject({ ok: false, reason: "confRefused" });
    expect(refused.ok ? "" : "detail" in refused ? refused.detail : "").toMatch(/learner 4 is 3 entries behind the leader \(at most 1/);

    net.reconnect(4);
    net.tickAll(1);
    expect(net.proposeConf(leader, "promote", 4, 1)).toMatchObject({ ok: true });
    for (const id of net.ids) expect(net.status(id).conf).toEqual({ voters: [1, 2, 3, 4], learners: [] });

    // Four voters: a quorum is three. With two of them down, nothing commits.
    const [f1, f2] = followersOf(net, leader);
    net.crash(f1 as NodeId);
    net.crash(f2 as NodeId);
    const commit = net.status(leader).commit;
    net.propose(leader, "two of four");
    expect(net.status(leader).commit).toBe(commit);
    net.start(f1 as NodeId);
    net.tickAll(2);
    expect(net.appliedData(leader)).toContain("two of four");
  });

  it("takes the vote of a learner promoted in a change it has not seen: the cluster may need it to elect (chaos seed 34)", () => {
    const net = new Network([1, 2, 3]);
    net.electLeader(1);
    net.addNode(4);
    net.proposeConf(1, "addLearner", 4);
    net.propose(1, "caught up");
    // Node 3 misses the promotion: in its log, 4 is still a learner.
    net.isolate(3);
    expect(net.proposeConf(1, "promote", 4, 1)).toMatchObject({ ok: true });
    expect(net.status(3).conf).toEqual({ voters: [1, 2, 3], learners: [4] });
    // An entry that only 4 gets, so that 2 cannot win 4's vote; then the leader dies.
    net.cutLink(1, 2);
    net.propose(1, "only on 1 and 4");
    net.crash(1);
    net.heal();
    // Four voters, three alive: every leader needs 2, 3 and 4. Only 4 can win (the longest log), and
    // only with node 3's vote, which 3 used to refuse as a learner's.
    expect(net.tickUntilLeader([2, 3, 4])).toBe(4);
    net.propose(4, "after");
    expect(net.appliedData(3)).toContain("after");
    expect(net.status(3).conf).toEqual({ voters: [1, 2, 3, 4], learners: [] });
  });

  it("refuses to promote a learner that never answered, however short the log", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    net.addNode(4);
    net.crash(4);
    expect(net.proposeConf(leader, "addLearner", 4)).toMatchObject({ ok: true });
    const refused = net.proposeConf(leader, "promote", 4, 1_000_000);
    expect(refused).toMatchObject({ ok: false, reason: "confRefused" });
    expect("detail" in refused ? refused.detail : "").toMatch(/learner 4 has not answered the leader lately/);
    net.start(4);
    net.tickAll(2);
    expect(net.proposeConf(leader, "promote", 4, 1_000_000)).toMatchObject({ ok: true });
  });

  it("refuses a second change while one is pending, and a new leader's change until it commits an entry of its term", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    const leader = net.tickUntilLeader();
    net.propose(leader, "settled");
    net.addNode(6);
    net.addNode(7);

    // The change cannot commit while the leader is cut off: a second one must wait for it.
    net.isolate(leader);
    expect(net.proposeConf(leader, "addLearner", 6)).toMatchObject({ ok: true });
    expect(net.proposeConf(leader, "addLearner", 7)).toMatchObject({ ok: false, reason: "confPending" });

    // The others elect a leader; its no-op is not acknowledged yet, so it may not change the membership:
    // the deposed leader's uncommitted change (on its log only) shows why a new leader must commit first.
    const others = net.ids.filter((id) => id !== leader && id !== 6 && id !== 7);
    net.hold = (m) => m.type === "appendResp";
    const next = net.tickUntilLeader(others);
    const early = net.proposeConf(next, "addLearner", 7);
    expect(early).toMatchObject({ ok: false, reason: "confPending" });
    expect("detail" in early ? early.detail : "").toMatch(/not committed an entry of its term/);
    net.hold = () => false;
    net.release();
    net.tickAll(1);
    expect(net.proposeConf(next, "addLearner", 7)).toMatchObject({ ok: true });

    // The old leader comes back: its change is overwritten, and with it its membership.
    net.heal();
    net.tickUntil(() => net.status(leader).conf.learners.includes(7), "the old leader to take the new log");
    // Node 6 was added only in the overwritten entry: it is no one's member (and holds nothing).
    for (const id of net.ids.filter((id) => id !== 6)) expect(net.status(id).conf).toEqual({ voters: [1, 2, 3, 4, 5], learners: [7] });
    expectStateMachineSafety(net);
  });

  it("removes the leader: the change commits without its vote, it hands off, and it never campaigns again", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    net.propose(leader, "before");
    const [a, b] = followersOf(net, leader) as [NodeId, NodeId];

    // With one of the two remaining voters down the removal cannot commit: the leader does not count itself.
    net.crash(b);
    const removal = net.proposeConf(leader, "remove", leader);
    expect(removal.ok).toBe(true);
    net.tickAll(2);
    expect(net.status(leader)).toMatchObject({ role: "leader", conf: { voters: [a, b].sort(), learners: [] } });
    expect(net.status(leader).commit).toBeLessThan(removal.ok ? removal.index : 0);
    // Meanwhile it still leads: a write commits once both remaining voters hold it.
    expect(net.propose(leader, "during").ok).toBe(true);

    const mark = net.mark();
    net.start(b);
    net.tickAll(2);
    expect(net.sentSince(mark, "timeoutNow")).toHaveLength(1);
    const successor = net.leader();
    expect([a, b]).toContain(successor);
    expect(net.status(leader).role).toBe("follower");
    net.propose(successor, "after");
    for (const id of [a, b]) expect(net.appliedData(id)).toEqual(["before", "during", "after"]);

    // However long it hears nothing, the removed node does not campaign.
    net.isolate(leader);
    const quiet = net.mark();
    net.tick(leader, 5 * electionTicks);
    expect(net.sentSince(quiet, "vote").filter((m) => m.from === leader)).toEqual([]);
  });

  it("keeps a removed member that comes back from disrupting the cluster, even without PreVote", () => {
    const net = new Network([1, 2, 3], { preVote: false });
    const leader = net.tickUntilLeader();
    const [gone] = followersOf(net, leader) as [NodeId];
    // It is cut off while it is removed, so it never learns it.
    net.isolate(gone);
    const removal = net.proposeConf(leader, "remove", gone);
    expect(removal).toMatchObject({ ok: true });
    // The leader replicates to a removed node until the next change (so that it can learn its removal
    // committed); after one more change it is a stranger, and it never learns.
    net.addNode(4);
    expect(net.proposeConf(leader, "addLearner", 4)).toMatchObject({ ok: true });
    net.propose(leader, "after the removal");
    const { term } = net.status(leader);

    net.reconnect(gone);
    net.tickAll(5 * electionTicks);
    expect(net.status(gone).term).toBeGreaterThan(term);
    expect(net.leader()).toBe(leader);
    expect(net.status(leader).term).toBe(term);
    for (const id of net.ids.filter((id) => id !== gone)) expect(net.status(id).term).toBe(term);
  });

  it("tells a removed node that its removal committed, so that it can stop", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    const [gone] = followersOf(net, leader) as [NodeId];
    // It is down when the others commit its removal.
    net.crash(gone);
    const removal = net.proposeConf(leader, "remove", gone);
    if (!removal.ok) throw new Error("removal refused");
    net.tickAll(2);
    expect(net.status(leader).commit).toBeGreaterThanOrEqual(removal.index);

    net.start(gone);
    net.tickUntil(() => net.appliedOf(gone).some((e) => e.index === removal.index), "the removed node to apply its removal");
    expect(net.status(gone).conf.voters).not.toContain(gone);
    // It never campaigns: its log no longer names it a voter.
    const mark = net.mark();
    net.isolate(gone);
    net.tick(gone, 5 * electionTicks);
    expect(net.sentSince(mark, "vote")).toEqual([]);
  });

  it("takes the membership from the log on restart, committed or not, and undoes a change the new leader overwrote", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    net.propose(leader, "settled");
    net.addNode(4);
    net.isolate(leader);
    expect(net.proposeConf(leader, "addLearner", 4)).toMatchObject({ ok: true });
    net.restart(leader);
    expect(net.status(leader).conf).toEqual({ voters: [1, 2, 3], learners: [4] });

    // The others never saw it; their leader's log overwrites it.
    const others = followersOf(net, leader).filter((id) => id !== 4);
    const next = net.tickUntilLeader(others);
    net.propose(next, "overwrites");
    net.heal();
    net.tickUntil(() => net.appliedData(leader).includes("overwrites"), "the old leader to catch up");
    expect(net.status(leader).conf).toEqual({ voters: [1, 2, 3], learners: [] });
    expectSameAppliedData(
      net,
      net.ids.filter((id) => id !== 4),
    );
  });

  it("brings a learner that joins after compaction up through a snapshot that names it", () => {
    const initial: ConfState = { voters: [1, 2, 3], learners: [] };
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    net.addNode(4);
    net.proposeConf(leader, "addLearner", 4);
    net.crash(4);
    for (const c of ["a", "b", "c", "d"]) net.propose(leader, c);
    const { applied } = net.status(leader);
    const conf = confAsApplied(net, leader, initial);
    net.storage(leader).createSnapshot(applied, conf, new TextEncoder().encode("state"));

    net.start(4);
    net.tickUntil(() => net.status(4).commit >= applied, "the learner to install the snapshot");
    expect(net.storage(4).snapshot().meta.conf).toEqual({ voters: [1, 2, 3], learners: [4] });
    expect(net.status(4).conf).toEqual({ voters: [1, 2, 3], learners: [4] });
    expect(net.proposeConf(leader, "promote", 4, 0)).toMatchObject({ ok: true });
    expect(net.status(4).conf.voters).toContain(4);
  });

  it("elects a leader whose quorum needs a voter that joined empty and knows no membership yet", () => {
    const net = new Network([1]);
    net.electLeader(1);
    net.propose(1, "settled");
    net.addNode(2);
    // Added as a voter while it hears nothing: the leader, without a live quorum, steps down (CheckQuorum).
    net.isolate(2);
    expect(net.proposeConf(1, "addVoter", 2)).toMatchObject({ ok: true });
    net.tickUntil(() => net.status(1).role !== "leader", "the leader to step down");

    // Node 1 can lead only with node 2's vote. Node 2 knows no voter yet: it must take votes as it takes
    // every other message (it used to refuse them all, and no leader could ever be elected).
    net.reconnect(2);
    expect(net.tickUntilLeader([1, 2])).toBe(1);
    net.propose(1, "after");
    expect(net.appliedData(2)).toEqual(["settled", "after"]);
    expect(net.status(2).conf).toEqual({ voters: [1, 2], learners: [] });
  });

  it("lets a leader that removed itself campaign until the removal commits, when it alone can commit it (thesis 4.2.2)", () => {
    const net = new Network([1, 2]);
    net.electLeader(1);
    net.propose(1, "settled");
    // Node 1 removes itself while node 2 hears nothing; it steps down without a live quorum.
    net.isolate(2);
    expect(net.proposeConf(1, "remove", 1)).toMatchObject({ ok: true });
    net.tickUntil(() => net.status(1).role !== "leader", "the leader to step down");
    expect(net.status(1).conf).toEqual({ voters: [2], learners: [] });

    // Node 2 cannot win: node 1's log is ahead of its own. Node 1 is not a voter of its latest membership
    // but must campaign (not counting its own vote) to commit the change; it then hands over and is out.
    net.reconnect(2);
    net.tickUntil(() => net.status(2).role === "leader" && net.status(2).conf.voters.length === 1, "node 2 to lead alone");
    expect(net.status(1)).toMatchObject({ role: "follower", conf: { voters: [2], learners: [] } });
    net.propose(2, "after");
    expect(net.appliedData(2)).toEqual(["settled", "after"]);
    const quiet = net.mark();
    net.isolate(1);
    net.tick(1, 5 * electionTicks);
    expect(net.sentSince(quiet, "vote").filter((m) => m.from === 1)).toEqual([]);
  });

  it("takes the vote requests of the member its pending change removed, as that member may campaign", () => {
    const net = new Network([1, 2, 3], { preVote: false });
    net.electLeader(2);
    net.propose(2, "settled");
    // The removal reaches node 3 only; node 2 steps down without a live quorum of {1, 3}.
    net.isolate(1);
    expect(net.proposeConf(2, "remove", 2)).toMatchObject({ ok: true });
    net.tickUntil(() => net.status(2).role !== "leader", "node 2 to step down");
    expect(net.status(3)).toMatchObject({ conf: { voters: [1, 3], learners: [] } });
    expect(net.status(3).commit).toBeLessThan(net.status(3).lastIndex);
    // (Restarted, node 3 is past the CheckQuorum lease in which it would ignore any candidate.)
    net.restart(3);

    // Node 2 campaigns to commit its removal. Node 3 holds the change but not its commit: it answers (it
    // used to drop the request; then, without PreVote, node 2's campaigns kept raising node 1's term
    // past node 3's own, and node 1 ignores requests of older terms: no one was ever elected).
    const mark = net.mark();
    net.campaign(2);
    expect(net.sentSince(mark, "voteResp").filter((m) => m.from === 3 && m.to === 2)).toMatchObject([{ granted: true }]);

    net.reconnect(1);
    net.tickUntil(() => net.leaders().some((id) => id !== 2), "a voter to lead");
    expect(net.status(net.leader()).conf).toEqual({ voters: [1, 3], learners: [] });
    expect(net.appliedData(1)).toEqual(["settled"]);
    // The leader tells node 2 (departing) that its removal committed: it stops campaigning.
    net.tickAll(2 * electionTicks);
    expect(net.status(2).role).toBe("follower");
  });

  it("answers a read whose heartbeat round reaches a quorum only through a change of the voters", () => {
    const net = new Network([1, 2, 3, 4]);
    net.electLeader(1);
    net.propose(1, "settled");
    net.isolate(3);
    net.isolate(4);
    // Only node 2 answers the round: 2 of 4 voters is no quorum.
    net.node(1).readIndex(7);
    net.tickAll(1);
    expect(net.readStatesOf(1)).toEqual([]);

    // Three voters: nodes 1 and 2 are a quorum, and both acknowledged the round. Node 2 echoes that round
    // again and again; the read used to wait for an acknowledgement that counts, which never came.
    expect(net.proposeConf(1, "remove", 4)).toMatchObject({ ok: true });
    net.tickAll(2);
    expect(net.readStatesOf(1)).toEqual([{ requestId: 7, index: net.status(1).commit - 1 }]);
  });

  it("lets a joining node follow a leader that the old memberships it replays do not name", () => {
    // Small appends, so that the joining node's log grows a few entries at a time through old memberships.
    const net = new Network([1, 2, 3], { msgBytesMax: 100 });
    net.electLeader(1);
    for (const c of ["a", "b"]) net.propose(1, c);
    // A membership without node 4 in the log: replaying it, the joining node knows 1, 2 and 3 only.
    expect(net.proposeConf(1, "update", 1)).toMatchObject({ ok: true });
    net.addNode(4);
    net.proposeConf(1, "addLearner", 4);
    net.tickUntil(() => net.proposeConf(1, "promote", 4, 0).ok, "the learner to be promoted");
    net.node(1).transferLeadership(4);
    net.deliver();
    expect(net.leader()).toBe(4);
    net.propose(4, "c");

    net.addNode(5);
    expect(net.proposeConf(4, "addLearner", 5)).toMatchObject({ ok: true });
    net.tickUntil(() => net.appliedData(5).includes("c"), "the joining node to catch up with leader 4");
    expect(net.appliedData(5)).toEqual(net.appliedData(4));
    expect(net.status(5).conf).toEqual({ voters: [1, 2, 3, 4], learners: [5] });
  });

  it("refuses changes that do not fit the membership, with the reason", () => {
    const net = new Network([1]);
    net.electLeader(1);
    net.propose(1, "in term");
    const detail = (r: ReturnType<Network["proposeConf"]>): string => (!r.ok && "detail" in r ? r.detail : "");
    expect(detail(net.proposeConf(1, "remove", 1))).toBe("node 1 is the last voter");
    expect(detail(net.proposeConf(1, "addVoter", 1))).toBe("node 1 is already a member");
    expect(detail(net.proposeConf(1, "promote", 9))).toBe("node 9 is not a member");
    expect(detail(net.proposeConf(1, "update", 9))).toBe("node 9 is not a member");
    expect(net.proposeConf(1, "update", 1)).toMatchObject({ ok: true });
  });
});
