import { describe, expect, it } from "vitest";
import type { LogStorage, NodeId } from "../../src/core/index.js";
import { Network } from "./network.js";
import { expectSameAppliedData } from "./safety.js";

const electionTicks = 10;

/**
 * The state machine of these stories is the list of applied commands; its snapshot is that list,
 * encoded. Compacts `id`'s storage up to what it applied, as the driver does after a snapshot.
 */
function compact(net: Network, id: NodeId): number {
  const { applied, conf } = net.status(id);
  net.storage(id).createSnapshot(applied, conf, new TextEncoder().encode(JSON.stringify(net.appliedData(id))));
  return applied;
}

function snapshotContents(net: Network, id: NodeId): string[] {
  return JSON.parse(new TextDecoder().decode(net.storage(id).snapshot().data)) as string[];
}

function commands(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix} ${i}`);
}

/** Three nodes; one follower is down while the leader commits 20 commands and compacts its log. */
function laggingFollowerSetup(): { net: Network; leader: NodeId; lagging: NodeId; snapshotIndex: number } {
  const net = new Network([1, 2, 3]);
  const leader = net.tickUntilLeader();
  const [lagging] = net.ids.filter((id) => id !== leader);
  if (lagging === undefined) throw new Error("three nodes expected");
  net.propose(leader, "seen by everyone");
  net.crash(lagging);
  net.proposeAll(leader, commands("missed", 20));
  const snapshotIndex = compact(net, leader);
  expect(net.status(leader).firstIndex).toBe(snapshotIndex + 1);
  return { net, leader, lagging, snapshotIndex };
}

describe("snapshots", () => {
  it("bring a lagging follower up to date when the leader no longer has the entries it needs", () => {
    const { net, leader, lagging, snapshotIndex } = laggingFollowerSetup();

    net.start(lagging);
    const mark = net.mark();
    net.tickAll(2);

    expect(net.sentSince(mark, "snapshot")).toEqual([expect.objectContaining({ from: leader, to: lagging })]);
    expect(net.storage(lagging).snapshot().meta.index).toBe(snapshotIndex);
    expect(snapshotContents(net, lagging)).toEqual(["seen by everyone", ...commands("missed", 20)]);
    expect(net.status(lagging).commit).toBe(net.status(leader).commit);

    // From there on it replicates from the log as usual.
    net.propose(leader, "after the snapshot");
    expect(net.appliedData(lagging)).toEqual(["after the snapshot"]);
    expect(net.status(leader).progress?.get(lagging)).toMatchObject({ state: "replicate", match: net.status(leader).lastIndex });
  });

  it("wait while the storage reads the leader's snapshot back from disk, and go out once it has", () => {
    const { net, leader, lagging, snapshotIndex } = laggingFollowerSetup();
    // The leader's storage let go of the data (a durable log does once the snapshot is written) and
    // needs a few calls to read it back.
    const storage: LogStorage = net.storage(leader);
    const inMemory = storage.snapshotToSend.bind(storage);
    let refusals = 3;
    storage.snapshotToSend = () => (refusals-- > 0 ? undefined : inMemory());

    net.start(lagging);
    const mark = net.mark();
    net.tickAll(1);
    expect(net.sentSince(mark, "snapshot")).toEqual([]);
    net.tickUntil(() => net.storage(lagging).snapshot().meta.index === snapshotIndex, "the snapshot to arrive");
    expect(refusals).toBeLessThan(0);
    expect(net.sentSince(mark, "snapshot")).toHaveLength(1);
    expect(snapshotContents(net, lagging)).toEqual(["seen by everyone", ...commands("missed", 20)]);
  });

  it("are followed by the entries the leader appended after compacting", () => {
    const { net, leader, lagging, snapshotIndex } = laggingFollowerSetup();
    net.proposeAll(leader, commands("after compaction", 5));

    net.start(lagging);
    net.tickAll(2);

    expect(net.storage(lagging).snapshot().meta.index).toBe(snapshotIndex);
    expect(net.appliedData(lagging)).toEqual(commands("after compaction", 5));
    expect(net.status(lagging).lastIndex).toBe(net.status(leader).lastIndex);
  });

  it("are not sent to a follower the leader has not heard from", () => {
    const { net, lagging } = laggingFollowerSetup();
    const mark = net.mark();
    net.tickAll(5 * electionTicks);
    expect(net.sentSince(mark, "snapshot")).toEqual([]);
    expect(net.isUp(lagging)).toBe(false);
  });

  it("are sent again after a snapshot message is lost", () => {
    const { net, leader, lagging, snapshotIndex } = laggingFollowerSetup();
    net.drop = (m) => m.type === "snapshot";
    net.start(lagging);
    net.tickAll(2);
    net.drop = () => false;

    // The leader waits for the lost snapshot for a while (it may be large and slow), then probes again.
    const mark = net.mark();
    net.tickUntil(() => net.storage(lagging).snapshot().meta.index === snapshotIndex, "the snapshot arrives", 5 * electionTicks);
    expect(net.sentSince(mark, "snapshot")).toHaveLength(1);
    net.tickAll(1);
    expect(net.status(lagging).commit).toBe(net.status(leader).commit);
  });

  it("are resent at once when the transport reports the failure", () => {
    const { net, leader, lagging } = laggingFollowerSetup();
    net.drop = (m) => m.type === "snapshot";
    net.start(lagging);
    net.tickAll(2);
    net.drop = () => false;

    net.node(leader).reportSnapshotFailed(lagging);
    const mark = net.mark();
    net.tickAll(1);
    expect(net.sentSince(mark, "snapshot")).toHaveLength(1);
    expect(net.status(lagging).commit).toBe(net.status(leader).commit);
  });

  it("let every node restart from its own snapshot and apply only what follows it", () => {
    const net = new Network([1, 2, 3]);
    const leader = net.tickUntilLeader();
    net.proposeAll(leader, commands("before", 10));
    net.tickAll(1);
    for (const id of net.ids) compact(net, id);
    net.proposeAll(leader, commands("after", 3));
    for (const id of net.ids) net.restart(id);

    for (const id of net.ids) {
      expect(net.status(id).applied, `node ${id}`).toBeGreaterThanOrEqual(net.storage(id).snapshot().meta.index);
      expect(snapshotContents(net, id), `node ${id}`).toEqual(commands("before", 10));
    }
    net.commit("after the restart");
    net.tickAll(1);
    expectSameAppliedData(net);
    // The harness keeps what a restarted state machine restores from its snapshot: nothing is applied twice.
    expect(net.appliedData(1)).toEqual([...commands("before", 10), ...commands("after", 3), "after the restart"]);
  });
});
