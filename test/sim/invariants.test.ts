import { describe, expect, it } from "vitest";
import { MemoryStorage, type Entry } from "../../src/core/index.js";
import { SafetyMonitor, type LogView } from "./invariants.js";

/** Each checker must fire on a minimal bad event sequence and stay quiet on the good twin. */

const VOTERS = [1, 2, 3];
const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const entry = (index: number, term: number, text = `e${index}`): Entry => ({ index, term, type: "normal", data: bytes(text) });

function kinds(monitor: SafetyMonitor): string[] {
  return monitor.violations.map((v) => v.kind);
}

function storageWith(entries: Entry[]): MemoryStorage {
  const storage = new MemoryStorage({ voters: VOTERS, learners: [] });
  storage.append(entries);
  return storage;
}

function viewOf(entries: Entry[]): LogView {
  return {
    firstIndex: 1,
    lastIndex: entries.length,
    termAt: (i) => (i === 0 ? 0 : entries[i - 1]?.term),
  };
}

describe("safety monitor", () => {
  it("election safety: one leader per term", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeLeader(1, 5);
    monitor.observeLeader(1, 5);
    monitor.observeLeader(2, 6);
    expect(kinds(monitor)).toEqual([]);
    monitor.observeLeader(3, 5);
    expect(kinds(monitor)).toEqual(["electionSafety"]);
    expect(monitor.electedTerms).toBe(2);
  });

  it("durable hard state: no second vote in a term, no term going back", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeDurableHardState(1, { term: 3, vote: 0, commit: 0 });
    monitor.observeDurableHardState(1, { term: 3, vote: 2, commit: 0 });
    monitor.observeDurableHardState(1, { term: 4, vote: 3, commit: 1 });
    expect(kinds(monitor)).toEqual([]);
    monitor.observeDurableHardState(1, { term: 4, vote: 2, commit: 1 });
    monitor.observeDurableHardState(1, { term: 2, vote: 2, commit: 1 });
    expect(kinds(monitor)).toEqual(["doubleVote", "termRegressed"]);
  });

  it("durable votes across a disk loss: a forgotten vote is a violation only once the node votes for another in that term", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeDurableHardState(1, { term: 5, vote: 2, commit: 3 });
    monitor.observeDiskLost(1);
    // The new disk starts at term 0 (not a regression of the old one), learns term 5 again without a
    // vote, and may vote again in other terms, or for the same candidate.
    monitor.observeDurableHardState(1, { term: 0, vote: 0, commit: 0 });
    monitor.observeDurableHardState(1, { term: 5, vote: 0, commit: 0 });
    monitor.observeDurableHardState(1, { term: 5, vote: 2, commit: 0 });
    monitor.observeDurableHardState(1, { term: 6, vote: 3, commit: 0 });
    expect(kinds(monitor)).toEqual([]);

    const twice = new SafetyMonitor(VOTERS);
    twice.observeDurableHardState(1, { term: 5, vote: 2, commit: 3 });
    twice.observeDiskLost(1);
    twice.observeDurableHardState(1, { term: 5, vote: 1, commit: 0 });
    expect(kinds(twice)).toEqual(["doubleVote"]);
    expect(twice.violations[0]?.message).toContain("lost its disk");

    // A vote no candidate counts (the node is excluded: every peer refuses its new incarnation; or the
    // candidate refuses it) promises nothing.
    const refused = new SafetyMonitor(VOTERS);
    refused.observeDurableHardState(1, { term: 5, vote: 2, commit: 3 });
    refused.observeDiskLost(1);
    refused.excluded.add(1);
    refused.observeDurableHardState(1, { term: 5, vote: 1, commit: 0 });
    expect(kinds(refused)).toEqual([]);
    const candidateRefuses = new SafetyMonitor(VOTERS);
    candidateRefuses.voteCounts = (_voter, candidate) => candidate !== 3;
    candidateRefuses.observeDurableHardState(1, { term: 5, vote: 2, commit: 3 });
    candidateRefuses.observeDiskLost(1);
    candidateRefuses.observeDurableHardState(1, { term: 5, vote: 3, commit: 0 });
    expect(kinds(candidateRefuses)).toEqual([]);
    candidateRefuses.observeDurableHardState(1, { term: 6, vote: 1, commit: 0 });
    candidateRefuses.observeDurableHardState(1, { term: 6, vote: 2, commit: 0 });
    expect(kinds(candidateRefuses)).toEqual(["doubleVote"]);
  });

  it("log matching: the same (index, term) never carries different content or follows a different term", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeLogEntries([entry(1, 1), entry(2, 1), entry(3, 2)], 0, "node 1");
    monitor.observeLogEntries([entry(2, 1), entry(3, 2)], 1, "node 2");
    expect(kinds(monitor)).toEqual([]);
    monitor.observeLogEntries([entry(3, 2, "other")], 1, "node 3");
    expect(kinds(monitor)).toEqual(["logMatching"]);

    const prevDiffers = new SafetyMonitor(VOTERS);
    prevDiffers.observeLogEntries([entry(1, 1), entry(2, 3)], 0, "node 1");
    prevDiffers.observeLogEntries([entry(1, 2), entry(2, 3)], 0, "node 2");
    expect(kinds(prevDiffers)).toEqual(["logMatching"]);

    const termsDecrease = new SafetyMonitor(VOTERS);
    termsDecrease.observeLogEntries([entry(1, 2), entry(2, 1)], 0, "append");
    expect(kinds(termsDecrease)).toEqual(["logMatching"]);
  });

  it("state machine safety: nodes apply the same entry at an index", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeApplied(1, entry(1, 1), 1);
    monitor.observeApplied(2, entry(1, 1), 2);
    expect(kinds(monitor)).toEqual([]);
    monitor.observeApplied(3, entry(1, 1, "different"), 2);
    monitor.observeApplied(3, entry(1, 2), 2);
    expect(kinds(monitor)).toEqual(["stateMachineSafety", "stateMachineSafety"]);
    expect(monitor.highestCommitted).toBe(1);
  });

  it("snapshots: an installed snapshot must agree with the committed term, and equal indexes mean equal states", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeApplied(1, entry(1, 1), 1);
    monitor.observeSnapshotInstalled(2, { index: 1, term: 1, conf: { voters: VOTERS, learners: [] } }, 1);
    monitor.observeSnapshotCreated(1, 1, bytes("state"));
    monitor.observeSnapshotCreated(2, 1, bytes("state"));
    expect(kinds(monitor)).toEqual([]);
    monitor.observeSnapshotInstalled(3, { index: 1, term: 2, conf: { voters: VOTERS, learners: [] } }, 2);
    monitor.observeSnapshotCreated(3, 1, bytes("other state"));
    expect(kinds(monitor)).toEqual(["snapshotMismatch", "snapshotMismatch"]);
  });

  it("committed entries stay durable on a majority, counting snapshots that cover them", () => {
    const monitor = new SafetyMonitor(VOTERS);
    const log = [entry(1, 1), entry(2, 1)];
    monitor.observeApplied(1, log[0] as Entry, 1);
    monitor.observeApplied(1, log[1] as Entry, 1);
    const full = storageWith(log);
    const compacted = storageWith(log);
    compacted.createSnapshot(2, { voters: VOTERS, learners: [] }, bytes("state"));
    const short = storageWith([entry(1, 1)]);
    monitor.checkCommittedDurable(
      new Map([
        [1, full],
        [2, compacted],
        [3, short],
      ]),
    );
    expect(kinds(monitor)).toEqual([]);
    const diverged = storageWith([entry(1, 1), entry(2, 2)]);
    monitor.checkCommittedDurable(
      new Map([
        [1, full],
        [2, diverged],
        [3, short],
      ]),
    );
    expect(kinds(monitor)).toEqual(["committedLost"]);
  });

  it("committed entries: a member out of every quorum (lost its disk, not back) counts as a holder, one back empty does not", () => {
    const monitor = new SafetyMonitor(VOTERS);
    const log = [entry(1, 1), entry(2, 1)];
    monitor.observeApplied(1, log[0] as Entry, 1);
    monitor.observeApplied(1, log[1] as Entry, 1);
    const storages = new Map([
      [1, storageWith(log)],
      [2, storageWith([])],
      [3, storageWith([entry(1, 1)])],
    ]);
    monitor.observeDiskLost(2);
    monitor.excluded.add(2);
    monitor.checkCommittedDurable(storages);
    expect(kinds(monitor)).toEqual([]);
    monitor.excluded.delete(2);
    monitor.checkCommittedDurable(storages);
    expect(kinds(monitor)).toEqual(["committedLost"]);
    expect(monitor.violations[0]?.message).toContain("node(s) 2 lost their disk and take part again");
  });

  it("applied entries stay in the applying node's durable log", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeApplied(1, entry(1, 1), 1);
    monitor.checkAppliedDurable(1, 1, storageWith([entry(1, 1)]));
    expect(kinds(monitor)).toEqual([]);
    monitor.checkAppliedDurable(1, 1, storageWith([]));
    expect(kinds(monitor)).toEqual(["appliedNotDurable"]);
  });

  it("commit index: never backwards within an incarnation, never below the durable commit after a restart", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeCommit(1, 1, 0, 0);
    monitor.observeCommit(1, 1, 5, 0);
    monitor.observeCommit(1, 2, 3, 3);
    expect(kinds(monitor)).toEqual([]);
    monitor.observeCommit(1, 2, 2, 3);
    monitor.observeCommit(1, 3, 1, 3);
    expect(kinds(monitor)).toEqual(["commitRegressed", "commitRegressed"]);
  });

  it("leader completeness: a new leader holds what earlier terms committed", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeApplied(1, entry(1, 1), 1);
    monitor.observeApplied(1, entry(2, 1), 1);
    monitor.checkLeaderCompleteness(2, 2, viewOf([entry(1, 1), entry(2, 1), entry(3, 2)]));
    // An entry committed in term 3 need not be held by a (stale) leader of term 3 or earlier.
    monitor.observeApplied(1, entry(3, 3), 3);
    monitor.checkLeaderCompleteness(2, 3, viewOf([entry(1, 1), entry(2, 1)]));
    expect(kinds(monitor)).toEqual([]);
    monitor.checkLeaderCompleteness(3, 4, viewOf([entry(1, 1), entry(2, 1)]));
    monitor.checkLeaderCompleteness(3, 4, viewOf([entry(1, 1), entry(2, 1), entry(3, 2)]));
    expect(kinds(monitor)).toEqual(["leaderCompleteness", "leaderCompleteness"]);
  });

  it("client commands: applied at one index only, and never after being reported failed", () => {
    const monitor = new SafetyMonitor(VOTERS);
    monitor.observeCommand(1, 7, 4);
    monitor.observeCommand(2, 7, 4);
    expect(kinds(monitor)).toEqual([]);
    monitor.observeCommand(2, 7, 9);
    monitor.observeFailedOp(7, "refused");
    monitor.observeFailedOp(8, "refused");
    monitor.observeCommand(3, 8, 10);
    expect(kinds(monitor)).toEqual(["duplicateApply", "failedOpApplied", "failedOpApplied"]);
  });
});
