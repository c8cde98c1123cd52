import { describe, expect, it } from "vitest";
import type { Message, NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";
import { expectStateMachineSafety, logTerms } from "./safety.js";

/**
 * Raft paper, Figure 8: a leader must not decide that an entry of an earlier term is committed because
 * a majority stores it; a later leader can still overwrite it. Only an entry of the leader's own term
 * commits by counting replicas, and commits everything before it.
 *
 * S1..S5 are nodes 1..5. CheckQuorum is off because its leases would only delay the elections the
 * story forces; the commit rule under test does not depend on it. Messages carry one entry each
 * (msgBytesMax fits one short command), so the leader's no-op can be held back on its own.
 */
const options = { checkQuorum: false, msgBytesMax: 30 } as const;

function appendsFrom(leader: NodeId, except: NodeId[] = []): (m: Message) => boolean {
  return (m) => m.type === "append" && m.from === leader && !except.includes(m.to);
}

/** Appends that would store index `index` on their receiver (probes that will be rejected pass). */
function wouldStore(net: Network, index: number): (m: Message) => boolean {
  return (m) => m.type === "append" && m.entries.some((e) => e.index >= index) && net.status(m.to).lastIndex >= m.prevIndex;
}

/** Figure 8 (a) to (c): S1, leader again in a later term, has put its old-term entry "x" on a majority. */
function figure8c(): { net: Network; oldTerm: number; newTerm: number } {
  const net = new Network([1, 2, 3, 4, 5], options);

  // (a) S1 leads and replicates "x" at index 2 to S2 only.
  net.electLeader(1);
  const oldTerm = net.status(1).term;
  net.drop = appendsFrom(1, [2]);
  net.propose(1, "x");
  expect(logTerms(net, 1)).toEqual([oldTerm, oldTerm]);
  expect(logTerms(net, 2)).toEqual([oldTerm, oldTerm]);

  // (b) S1 crashes; S5 wins with the votes of S3 and S4 and writes its no-op at index 2, locally only.
  net.crash(1);
  net.drop = appendsFrom(5);
  net.electLeader(5);
  expect(logTerms(net, 5)).toEqual([oldTerm, net.status(5).term]);

  // (c) S5 crashes; S1 restarts and wins a later term with S2, S3 and S4. It brings S3 and S4 up to
  // index 2, but every message that would store its new no-op (index 3) is held back.
  net.crash(5);
  net.start(1);
  net.drop = () => false;
  net.hold = wouldStore(net, 3);
  net.electLeader(1);
  net.hold = () => false;
  const newTerm = net.status(1).term;
  expect(logTerms(net, 1)).toEqual([oldTerm, oldTerm, newTerm]);
  return { net, oldTerm, newTerm };
}

describe("Figure 8", () => {
  it("does not commit an entry of an earlier term that a majority stores", () => {
    const { net, oldTerm } = figure8c();

    // "x" (index 2, the old term) is on S1, S2, S3 and S4: a majority of five...
    for (const id of [1, 2, 3, 4]) expect(logTerms(net, id).slice(0, 2), `S${id}`).toEqual([oldTerm, oldTerm]);
    // ...and still S1 must not count it as committed.
    expect(net.status(1).commit).toBe(1);
    expect(net.appliedData(1)).toEqual([]);
  });

  it("(d) lets a later leader overwrite that entry, which is why it was not committed", () => {
    const { net, oldTerm } = figure8c();

    // S1 crashes before its no-op spreads; S5 restarts. Its last term is newer than anyone's, so it
    // wins with S2, S3 and S4 and replaces "x" with its own entry of index 2.
    net.crash(1);
    net.held = []; // S1's held appends are lost with it.
    net.start(5);
    net.electLeader(5);
    net.tickAll(2);

    for (const id of [2, 3, 4, 5]) expect(logTerms(net, id)[1], `S${id} index 2`).not.toBe(oldTerm);
    net.start(1);
    net.tickAll(2);
    for (const id of net.ids) expect(net.appliedData(id), `S${id}`).not.toContain("x");
    expectStateMachineSafety(net);
  });

  it("(e) commits the old entry together with one of the new term, after which no stale node can win", () => {
    const { net, newTerm } = figure8c();

    // The no-op of S1's new term reaches S2, S3 and S4: it commits, and "x" before it.
    net.release();
    expect(logTerms(net, 3)[2]).toBe(newTerm);
    expect(net.status(1).commit).toBe(3);
    expect(net.appliedData(1)).toEqual(["x"]);

    // Now S1 crashes and S5 restarts: no majority will vote for its older log.
    net.crash(1);
    net.start(5);
    for (let attempt = 0; attempt < 3; attempt++) net.campaign(5);
    expect(net.status(5).role).not.toBe("leader");

    const leader = net.tickUntilLeader([2, 3, 4, 5]);
    expect(leader).not.toBe(5);
    net.start(1);
    net.tickAll(2);
    for (const id of net.ids) expect(net.appliedData(id), `S${id}`).toEqual(["x"]);
    expectStateMachineSafety(net);
  });
});
