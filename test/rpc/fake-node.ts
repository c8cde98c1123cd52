import type { Command, CommandResult } from "../../gen/raftkv/v1/command_pb.js";
import type { Role } from "../../src/core/index.js";
import type { KvNode, MemberView, MembershipChange, NodeStatusView } from "../../src/driver/types.js";
import { createKvStore, encodeCommand, type KvOptions, type KvStore } from "../../src/kv/index.js";

/**
 * A single-process stand-in for the driver: mutations apply to a real KvStore at once (as a one-node
 * cluster would after its fsync), reads pass the barrier at once. Tests switch it into the states a
 * real node goes through (follower, no leader, overloaded, ...) by setting `fail`, and count the
 * barriers and proposals the services asked for.
 */
export class FakeNode implements KvNode {
  readonly store: KvStore;
  role: Role = "leader";
  term = 3;
  leader: number;
  members: MemberView[];
  /** When set, mutate and readBarrier reject with what it returns (or resolve when it returns undefined). */
  fail: ((kind: "mutate" | "read" | "transfer" | "membership") => Error | undefined) | undefined;
  /** Every membership change asked for, in order. */
  readonly membershipChanges: MembershipChange[] = [];
  /** Resolves the next proposals only when released (to test deadlines and cancellation). */
  hold = false;
  readonly held: (() => void)[] = [];
  barriers = 0;
  proposals: Command[] = [];
  ready = true;
  private index = 0;

  constructor(
    readonly id = 1,
    options: Partial<KvOptions> = {},
    store?: KvStore,
  ) {
    this.store = store ?? createKvStore(options);
    this.leader = id;
    this.members = [
      { id, name: `node-${id}`, peerUrl: `http://127.0.0.1:${2380 + id}`, clientUrl: `http://127.0.0.1:${2379 + id}`, learner: false },
    ];
  }

  async mutate(command: Command, signal?: AbortSignal): Promise<CommandResult> {
    const failure = this.fail?.("mutate");
    if (failure !== undefined) throw failure;
    this.proposals.push(command);
    if (this.hold) {
      await new Promise<void>((resolve, reject) => {
        this.held.push(resolve);
        signal?.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
      });
    }
    this.index++;
    const result = this.store.apply(this.index, encodeCommand(command));
    if (result.kind === "error") throw result.error;
    return result.result;
  }

  async readBarrier(): Promise<void> {
    this.barriers++;
    const failure = this.fail?.("read");
    if (failure !== undefined) throw failure;
  }

  status(): NodeStatusView {
    return {
      id: this.id,
      name: `node-${this.id}`,
      role: this.role,
      term: this.term,
      leader: this.leader,
      commitIndex: this.index,
      appliedIndex: this.store.appliedIndex,
      lastIndex: this.index,
      snapshotIndex: 0,
      members: this.members,
      matchIndex: undefined,
    };
  }

  async transferLeadership(to: number): Promise<number> {
    const failure = this.fail?.("transfer");
    if (failure !== undefined) throw failure;
    this.leader = to === 0 ? (this.members.find((m) => m.id !== this.id)?.id ?? this.id) : to;
    this.role = this.leader === this.id ? "leader" : "follower";
    this.term++;
    return this.leader;
  }

  /** Applies the change to `members` at once (id 0 of an add takes the next id), as a one-node leader would. */
  async changeMembership(change: MembershipChange): Promise<MemberView[]> {
    const failure = this.fail?.("membership");
    if (failure !== undefined) throw failure;
    this.membershipChanges.push(change);
    const id = change.nodeId === 0 ? Math.max(...this.members.map((m) => m.id)) + 1 : change.nodeId;
    const current = this.members.find((m) => m.id === id);
    const others = this.members.filter((m) => m.id !== id);
    const base = current ?? { id, name: "", peerUrl: "", clientUrl: "", learner: change.op === "addLearner" };
    const changed = { ...base, ...change.member, learner: change.op === "promote" ? false : base.learner };
    this.members = change.op === "remove" ? others : [...others, changed].sort((a, b) => a.id - b.id);
    return this.members;
  }

  health(): { live: boolean; ready: boolean; reason: string } {
    return { live: true, ready: this.ready, reason: this.ready ? "ok" : "no leader known" };
  }
}
