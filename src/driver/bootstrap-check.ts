import type { NodeId } from "../core/index.js";
import { sleep } from "../lib/sleep.js";
import type { ProbeAnswer } from "../transport/index.js";

export type BootstrapVerdict =
  /** Every other member holds nothing: the cluster is new, and this member may bootstrap. */
  | { readonly kind: "new" }
  /** A member holds state: the cluster exists, and this member's empty data directory means it lost its own. */
  | {
      readonly kind: "exists";
      readonly evidence: { readonly peer: NodeId; readonly term: number; readonly lastIndex: number; readonly snapshotIndex: number };
    }
  /** Some members have not answered; ask again. Never read as "new". */
  | { readonly kind: "wait"; readonly waitingFor: readonly NodeId[] };

/**
 * Decides whether a member whose data directory is empty may bootstrap, from what every other member of
 * --initial-cluster says it holds.
 *
 * The rule: bootstrap only when EVERY other member has answered and holds nothing (term 0, no entry, no
 * snapshot); refuse as soon as any one holds something; otherwise wait.
 *
 * Why every member and not a majority. The empty member may be one that lost its disk; what it forgot
 * is (a) entries it acknowledged and (b) votes it cast. Every promise of either kind involves another
 * member that durably moved past term 0 before the disk was lost:
 *  - an acknowledged entry was sent by a leader, which persisted a term >= 1 to become leader;
 *  - a vote was asked for by a candidate, which persisted its term >= 1 before asking.
 * Terms never go back on a member that keeps its disk, so from then on that member answers "holds
 * something", and asking every member is sure to ask it. (A majority would not do: in a 5-member
 * cluster the candidate this member voted for may be the one member left out, and the two of them plus
 * one more could already be a quorum for a leader the fresh member then votes against.) Only if that
 * other member lost its disk too could both forget; that is losing a majority's worth of promises
 * (two of three), which no Raft system survives, and outside what raftkv promises.
 *
 * Why no interleaving of a fresh bootstrap lets an empty member vote in a cluster that has committed
 * entries: a committed entry was acknowledged by a quorum, and it is in the log of its leader, whose
 * term is >= 1 and which still answers "holds something" unless it lost its disk as well. And members
 * that really are all new can never disagree: a member that answers "bootstrapping" holds nothing, and
 * one that has started since answers with term 0 until an election, which needs a vote from a member
 * that has decided "new" itself.
 *
 * Unreachable or still-starting members mean "wait", never "new": the cost is that a brand-new cluster
 * forms only once every member has started once, which Kubernetes' parallel pod start gives at once.
 */
export function judgeBootstrap(answers: ReadonlyMap<NodeId, ProbeAnswer>): BootstrapVerdict {
  const waitingFor: NodeId[] = [];
  for (const [peer, answer] of [...answers].sort((a, b) => a[0] - b[0])) {
    switch (answer.kind) {
      case "running":
        if (answer.term > 0 || answer.lastIndex > 0 || answer.snapshotIndex > 0) {
          return {
            kind: "exists",
            evidence: { peer, term: answer.term, lastIndex: answer.lastIndex, snapshotIndex: answer.snapshotIndex },
          };
        }
        break;
      case "bootstrapping":
        break;
      case "starting":
      case "unreachable":
        waitingFor.push(peer);
        break;
    }
  }
  return waitingFor.length === 0 ? { kind: "new" } : { kind: "wait", waitingFor };
}

/** This member lost its data directory while the cluster it belongs to goes on: it must not start. */
export class MemberDataLostError extends Error {
  override readonly name = "MemberDataLostError";
  constructor(
    readonly selfId: NodeId,
    readonly evidence: { readonly peer: NodeId; readonly term: number; readonly lastIndex: number; readonly snapshotIndex: number },
  ) {
    super(
      `refusing to start: the data directory of member ${selfId} is empty, but the cluster already exists ` +
        `(member ${evidence.peer} is at term ${evidence.term}, last log index ${evidence.lastIndex}, snapshot index ${evidence.snapshotIndex}). ` +
        `This member lost its data: it would vote again and forget the writes it acknowledged, and the cluster could lose them. ` +
        `The rest of the cluster keeps serving without it. Restore this member's own data directory if you can; ` +
        `otherwise replace it: remove it (raftkv member remove ${selfId}), then start this node again, empty, with --join ` +
        `(it joins under a new id; "A member lost its data directory" in docs/operations.md).`,
    );
  }
}

export interface BootstrapCheckOptions {
  readonly selfId: NodeId;
  readonly peers: readonly NodeId[];
  /** Asks one member what it holds; never rejects (an unreachable member is an answer). */
  probe(peer: NodeId, signal: AbortSignal): Promise<ProbeAnswer>;
  readonly signal: AbortSignal;
  /** First pause between rounds; doubles up to retryMsMax. */
  readonly retryMs: number;
  readonly retryMsMax: number;
  /** Called once per round that ends in "wait" with the members still silent and why. */
  onWait(waitingFor: readonly { readonly peer: NodeId; readonly why: string }[], round: number): void;
}

/**
 * Asks every other member until judgeBootstrap decides. Resolves when the cluster is new; rejects with
 * MemberDataLostError when it exists, or with the signal's reason when aborted. Waits as long as it
 * must: an empty member that cannot reach its peers does nothing else (it neither votes nor campaigns).
 */
export async function runBootstrapCheck(o: BootstrapCheckOptions): Promise<void> {
  let pauseMs = o.retryMs;
  for (let round = 1; ; round++) {
    o.signal.throwIfAborted();
    const answers = new Map<NodeId, ProbeAnswer>();
    await Promise.all(
      o.peers.map(async (peer) => {
        answers.set(peer, await o.probe(peer, o.signal));
      }),
    );
    o.signal.throwIfAborted();
    const verdict = judgeBootstrap(answers);
    if (verdict.kind === "new") return;
    if (verdict.kind === "exists") throw new MemberDataLostError(o.selfId, verdict.evidence);
    o.onWait(
      verdict.waitingFor.map((peer) => {
        const answer = answers.get(peer);
        return { peer, why: answer?.kind === "unreachable" ? answer.reason : "still starting" };
      }),
      round,
    );
    await sleep(pauseMs, o.signal); // cut short by an abort, which the next round's check throws
    pauseMs = Math.min(o.retryMsMax, pauseMs * 2);
  }
}
