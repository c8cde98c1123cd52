import { describe, expect, it } from "vitest";
import type { Entry, Message, NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";

/** The part of a node's status that garbage input must not change, including a leader's view of each follower. */
function snapshotOf(net: Network, id: NodeId) {
  const { role, term, vote, leader, commit, applied, firstIndex, lastIndex, leadTransferee, progress } = net.status(id);
  return { role, term, vote, leader, commit, applied, firstIndex, lastIndex, leadTransferee, progress: [...(progress ?? [])] };
}

describe("garbage from a real member", () => {
  it("ignores an append whose entry has a term that is not an integer", () => {
    const net = new Network([1, 2, 3]);
    net.electLeader(1);
    const { term, lastIndex } = net.status(2);
    const before = snapshotOf(net, 2);

    // Well-formed in every other way: from the leader, in its term, right after node 2's last entry.
    net.node(2).step({
      type: "append",
      from: 1,
      to: 2,
      term,
      prevIndex: lastIndex,
      prevTerm: term,
      entries: [{ index: lastIndex + 1, term: Number.NaN, type: "normal", data: new Uint8Array(1) }],
      commit: 0,
    });
    // An accepted NaN term never becomes stable (NaN !== NaN), so the node would offer a Ready forever.
    net.deliver();
    expect(snapshotOf(net, 2)).toEqual(before);
  });

  it("does not let an acknowledgement of a read round never started confirm a later read", () => {
    const net = new Network([1, 2, 3, 4, 5]);
    net.electLeader(1);
    // Node 3 "acknowledges" a read round far in the future.
    net.node(1).step({ type: "heartbeatResp", from: 3, to: 1, term: net.status(1).term, readRound: 1_000_000 });
    net.deliver();

    // The classic stale-read setup: the leader and one follower are cut off; the majority elects a
    // new leader and commits a write, while the old leader still believes it leads.
    net.partition([1, 2], [3, 4, 5]);
    const newLeader = tickUntilLeaderAmong(net, [3, 4, 5]);
    net.propose(newLeader, "newer write");
    const newerWrite = net.status(newLeader).commit;
    expect(net.status(1).role).toBe("leader");

    net.node(1).readIndex(7);
    net.tickAll(1);
    for (const read of net.readStatesOf(1)) {
      expect(read.index === 0 || read.index >= newerWrite, `read state ${JSON.stringify(read)} misses index ${newerWrite}`).toBe(true);
    }
  });
});

/** Ticks everyone until one of `group` leads; bounded by a few election timeouts. */
function tickUntilLeaderAmong(net: Network, group: readonly NodeId[]): NodeId {
  const ticksMax = 100;
  for (let i = 0; i < ticksMax; i++) {
    const leader = group.find((id) => net.status(id).role === "leader");
    if (leader !== undefined) return leader;
    net.tickAll(1);
  }
  throw new Error(`no leader among [${group.join(", ")}] after ${ticksMax} ticks`);
}

/** A three-node cluster with a few committed entries; 1 leads, 2 and 3 follow. */
function steadyCluster(): Network {
  const net = new Network([1, 2, 3]);
  net.electLeader(1);
  net.proposeAll(1, ["a", "b", "c"]);
  return net;
}

/**
 * Steps `m` into its addressee and delivers whatever follows. Returns what the addressee sent in
 * response, after checking that its state did not change.
 */
function expectIgnored(net: Network, m: Message, what: string): Message[] {
  const before = snapshotOf(net, m.to);
  const mark = net.mark();
  net.node(m.to).step(m);
  net.deliver();
  expect(snapshotOf(net, m.to), what).toEqual(before);
  return net.sentSince(mark).filter((sent) => sent.from === m.to);
}

function entry(index: number, term: number): Entry {
  return { index, term, type: "normal", data: new Uint8Array([1]) };
}

/**
 * Well-formed messages from a real member, in the current term, one of each type, each aimed at the
 * node that would receive it (1 is the leader). `garbage` then spoils one field at a time.
 */
function wellFormed(net: Network): Message[] {
  const { term, lastIndex, commit, conf } = net.status(1);
  return [
    { type: "append", from: 1, to: 2, term, prevIndex: lastIndex, prevTerm: term, entries: [entry(lastIndex + 1, term)], commit },
    { type: "heartbeat", from: 1, to: 2, term, commit, readRound: 0 },
    { type: "snapshot", from: 1, to: 2, term, snapshot: { meta: { index: lastIndex + 5, term, conf }, data: new Uint8Array(0) } },
    { type: "readIndexResp", from: 1, to: 2, term, requestIds: [1], index: commit },
    { type: "appendResp", from: 2, to: 1, term, reject: false, index: lastIndex, hintIndex: 0, hintTerm: 0 },
    { type: "appendResp", from: 2, to: 1, term, reject: true, index: lastIndex, hintIndex: lastIndex, hintTerm: term },
    { type: "heartbeatResp", from: 2, to: 1, term, readRound: 0 },
    { type: "vote", from: 3, to: 2, term: term + 1, preVote: true, lastLogIndex: lastIndex, lastLogTerm: term, transfer: false },
  ];
}

const badNumbers = [-1, 0.5, -0.5, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 2 ** 53, Number.MAX_VALUE];

/** Every single-field corruption of `m` with a number that is not a valid index or term. */
function garbage(m: Message): { what: string; message: Message }[] {
  const out: { what: string; message: Message }[] = [];
  const spoil = (field: string, make: (bad: number) => Message): void => {
    for (const bad of badNumbers) out.push({ what: `${m.type} with ${field} = ${bad}`, message: make(bad) });
  };
  spoil("term", (bad) => ({ ...m, term: bad }));
  switch (m.type) {
    case "append": {
      const [first] = m.entries;
      if (first === undefined) break;
      spoil("prevIndex", (bad) => ({ ...m, prevIndex: bad }));
      spoil("prevTerm", (bad) => ({ ...m, prevTerm: bad }));
      spoil("commit", (bad) => ({ ...m, commit: bad }));
      spoil("entries[0].index", (bad) => ({ ...m, entries: [{ ...first, index: bad }] }));
      spoil("entries[0].term", (bad) => ({ ...m, entries: [{ ...first, term: bad }] }));
      break;
    }
    case "heartbeat":
      spoil("commit", (bad) => ({ ...m, commit: bad }));
      spoil("readRound", (bad) => ({ ...m, readRound: bad }));
      break;
    case "snapshot":
      spoil("snapshot index", (bad) => ({ ...m, snapshot: { ...m.snapshot, meta: { ...m.snapshot.meta, index: bad } } }));
      spoil("snapshot term", (bad) => ({ ...m, snapshot: { ...m.snapshot, meta: { ...m.snapshot.meta, term: bad } } }));
      break;
    case "readIndexResp":
      spoil("index", (bad) => ({ ...m, index: bad }));
      break;
    case "appendResp":
      spoil("index", (bad) => ({ ...m, index: bad }));
      spoil("hintIndex", (bad) => ({ ...m, hintIndex: bad }));
      spoil("hintTerm", (bad) => ({ ...m, hintTerm: bad }));
      break;
    case "heartbeatResp":
      spoil("readRound", (bad) => ({ ...m, readRound: bad }));
      break;
    case "vote":
      spoil("lastLogIndex", (bad) => ({ ...m, lastLogIndex: bad }));
      spoil("lastLogTerm", (bad) => ({ ...m, lastLogTerm: bad }));
      break;
    default:
      break;
  }
  return out;
}

describe("malformed and misaddressed messages", () => {
  it("ignores every message with a number that is not a valid index or term, and answers none", () => {
    const net = steadyCluster();
    let cases = 0;
    for (const base of wellFormed(net)) {
      for (const { what, message } of garbage(base)) {
        expect(expectIgnored(net, message, what), what).toEqual([]);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(150);
  });

  it("ignores messages from strangers, from itself, or addressed to another node", () => {
    const net = steadyCluster();
    for (const m of wellFormed(net)) {
      expect(expectIgnored(net, { ...m, from: 99 }, `${m.type} from a stranger`)).toEqual([]);
      expect(expectIgnored(net, { ...m, from: m.to }, `${m.type} from itself`)).toEqual([]);
      const other = m.to === 2 ? 3 : 2;
      const misaddressed = { ...m, to: other };
      const before = snapshotOf(net, m.to);
      // Handed to the wrong node, as a confused transport would.
      net.node(m.to).step(misaddressed);
      net.deliver();
      expect(snapshotOf(net, m.to), `${m.type} addressed to ${other}`).toEqual(before);
    }
  });

  it("ignores appends whose entries are not contiguous after prevIndex, or go back in term", () => {
    const net = steadyCluster();
    const { term, lastIndex, commit } = net.status(1);
    const append = (entries: Entry[]): Message => ({
      type: "append",
      from: 1,
      to: 2,
      term,
      prevIndex: lastIndex,
      prevTerm: term,
      entries,
      commit,
    });
    const cases: [string, Entry[]][] = [
      ["a gap after prevIndex", [entry(lastIndex + 2, term)]],
      ["a gap between entries", [entry(lastIndex + 1, term), entry(lastIndex + 3, term)]],
      ["an entry repeated", [entry(lastIndex + 1, term), entry(lastIndex + 1, term)]],
      ["entries out of order", [entry(lastIndex + 2, term), entry(lastIndex + 1, term)]],
      ["an entry before prevIndex", [entry(lastIndex, term)]],
      ["a term above the message's", [entry(lastIndex + 1, term + 1)]],
      ["a term below prevTerm", [entry(lastIndex + 1, term - 1)]],
      ["terms that go down", [entry(lastIndex + 1, term), entry(lastIndex + 2, term - 1)]],
    ];
    for (const [what, entries] of cases) expect(expectIgnored(net, append(entries), what), what).toEqual([]);
  });

  it("does not let an acknowledgement beyond the leader's log move its progress or commit index", () => {
    const net = steadyCluster();
    const { term, lastIndex } = net.status(1);
    for (const index of [lastIndex + 1, lastIndex + 1_000, Number.MAX_SAFE_INTEGER]) {
      expectIgnored(net, { type: "appendResp", from: 2, to: 1, term, reject: false, index, hintIndex: 0, hintTerm: 0 }, `ack of ${index}`);
    }
  });

  it("does not let a heartbeat commit beyond the follower's log", () => {
    const net = steadyCluster();
    const { term, lastIndex } = net.status(2);
    const responses = expectIgnored(net, { type: "heartbeat", from: 1, to: 2, term, commit: lastIndex + 10, readRound: 0 }, "heartbeat");
    // It still answers: the heartbeat is otherwise a sign of a live leader.
    expect(responses.map((m) => m.type)).toEqual(["heartbeatResp"]);
  });

  it("ignores rejections with hints beyond the leader's log, and still brings the follower up to date", () => {
    const net = steadyCluster();
    const { term, lastIndex } = net.status(1);
    net.node(1).step({
      type: "appendResp",
      from: 2,
      to: 1,
      term,
      reject: true,
      index: lastIndex + 50,
      hintIndex: lastIndex + 60,
      hintTerm: term + 5,
    });
    net
      .node(1)
      .step({ type: "appendResp", from: 2, to: 1, term, reject: true, index: lastIndex, hintIndex: lastIndex + 60, hintTerm: term });
    net.deliver();
    const next = net.status(1).progress?.get(2)?.next ?? 0;
    expect(next).toBeLessThanOrEqual(lastIndex + 1);
    net.propose(1, "d");
    net.tickAll(1);
    expect(net.appliedData(2)).toEqual(["a", "b", "c", "d"]);
  });

  it("answers a stale-term append or heartbeat with its own term only, and ignores other stale messages", () => {
    const net = steadyCluster();
    const current = wellFormed(net);
    // Move the cluster to a later term, then replay the earlier messages.
    net.node(1).transferLeadership(2);
    net.deliver();
    expect(net.leader()).toBe(2);
    for (const m of current) {
      const replies = expectIgnored(net, m, `stale ${m.type}`);
      for (const reply of replies)
        expect(reply, `reply to stale ${m.type}`).toMatchObject({ type: m.type === "vote" ? "voteResp" : "appendResp" });
      if (m.type === "append" || m.type === "heartbeat") {
        expect(replies).toEqual([expect.objectContaining({ type: "appendResp", index: 0, term: net.status(m.to).term })]);
      }
    }
  });
});
