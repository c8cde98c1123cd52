import type { Command, CommandResult } from "../../gen/raftkv/v1/command_pb.js";
import type { ConfChangeOp, NodeId, Role } from "../core/index.js";
import type { MemberRecord } from "../kv/index.js";

/**
 * What the service layer (src/rpc) may ask of a running node. The driver implements it; rpc maps its
 * domain errors (errors.ts) to Connect codes in exactly one place.
 */
export interface KvNode {
  readonly id: NodeId;
  /**
   * Proposes a mutation and resolves with its result once this node has applied it. Rejects with
   * NotLeaderError (nothing was proposed: safe to send to the leader), OverloadedError, StoppedError,
   * or UnknownOutcomeError (proposed, but leadership changed or the deadline passed before it applied:
   * it may or may not take effect; retry with the same client id and sequence).
   */
  mutate(command: Command, signal?: AbortSignal): Promise<CommandResult>;
  /**
   * A linearizable read barrier (ReadIndex, thesis 6.4): resolves once the local state machine has
   * applied every write committed before the call. Works on followers (the leader confirms the index).
   * Rejects with NotLeaderError when no leader is known, ReadFailedError when leadership could not be
   * confirmed (retry), StoppedError.
   */
  readBarrier(signal?: AbortSignal): Promise<void>;
  /** A point-in-time view of this node and, on the leader, of replication. */
  status(): NodeStatusView;
  /** Hands leadership to `to` (or to the most caught-up voter when 0) and resolves once it has it. */
  transferLeadership(to: NodeId, signal?: AbortSignal): Promise<NodeId>;
  /**
   * Proposes a membership change (on the leader) and resolves with the members once it applied here.
   * Rejects with NotLeaderError, MembershipRefusedError (nothing proposed: the member set does not allow
   * it), MembershipPendingError (nothing proposed: retry shortly), OverloadedError, StoppedError, or
   * UnknownOutcomeError (proposed; it may or may not take effect: list the members to see).
   */
  changeMembership(change: MembershipChange, signal?: AbortSignal): Promise<MemberView[]>;
  /** Live = the process works; ready = it can serve (storage healthy, a leader known, caught up). */
  health(): { readonly live: boolean; readonly ready: boolean; readonly reason: string };
}

export interface MemberView {
  readonly id: NodeId;
  readonly name: string;
  readonly peerUrl: string;
  readonly clientUrl: string;
  readonly learner: boolean;
}

export interface NodeStatusView {
  readonly id: NodeId;
  readonly name: string;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
  readonly members: readonly MemberView[];
  /** Leader only: per member, the highest replicated index. */
  readonly matchIndex: ReadonlyMap<NodeId, number> | undefined;
}

/**
 * A membership change as the driver takes it. `member` carries the name and URLs of a member that is
 * added or updated; the driver puts every member's record into the change's context, so the log and the
 * snapshots replicate the URLs with the member set.
 */
export interface MembershipChange {
  readonly op: ConfChangeOp;
  /** The member changed; for an add, 0 asks the cluster for the next unused id. */
  readonly nodeId: NodeId;
  readonly member?: Omit<MemberRecord, "id">;
}
