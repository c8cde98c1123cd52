import type { NodeId } from "../core/index.js";
import { sleep } from "../lib/sleep.js";
import type { ProbeAnswer } from "../transport/index.js";

/** What a member holds, as evidence in a verdict and in MemberDataLostError. */
export interface HolderEvidence {
  readonly peer: NodeId;
  readonly term: number;
  readonly lastIndex: number;
  readonly snapshotIndex: number;
}

export type BootstrapVerdict =
  /** Every other member holds nothing: the cluster is new, and this member may bootstrap. */
  | { readonly kind: "new" }
  /**
   * The cluster formed while this member was still asking, and no member has ever seen it: it never
   * voted or acknowledged anything, so it starts empty like a member that was slow to start.
   */
  | { readonly kind: "late"; readonly evidence: HolderEvidence }
  /** A member that holds state has seen this member: it lost its own data directory. */
  | { readonly kind: "exists"; readonly evidence: HolderEvidence }
  /** Some members have not answered; ask again. Never read as "new" or "late". */
  | { readonly kind: "wait"; readonly waitingFor: readonly NodeId[] };

/**
 * Decides whether a member whose data directory is empty may start, from what every other member of
 * --initial-cluster says it holds and whether it has ever seen this member.
 *
 * The rule: start only when EVERY other member has answered and no member that holds something (a
 * term, an entry or a snapshot) has ever seen an incarnation of this member; refuse as soon as one that
 * holds something has; otherwise wait. When all hold nothing the cluster is new ("new"); when some hold
 * something but none has seen this member, the cluster formed without it ("late": the others decided
 * "new" while this member answered "bootstrapping", and elected before its own round of questions).
 *
 * Why "seen this member" is the test. The empty member may be one that lost its disk; what it forgot
 * is (a) entries it acknowledged and (b) votes it cast. Each was a message to another member that
 * counted it: the leader counting the acknowledgement, the candidate counting the vote. Every message
 * carries the sender's incarnation, and the receiver records the first one it sees of each member in its
 * peers.json (peer-incarnations.ts) before it acts on the message; members also learn each other's
 * incarnation by Probe as soon as both run. So a member that counted a promise of this one answers
 * "seen", and a member that has seen no incarnation of it counted none. Only if the member that counted
 * the promise lost its own disk too (or crashed in the milliseconds between counting it and writing
 * peers.json, and this member lost its disk in the same moments) could both forget; that is losing a
 * majority's worth of promises, which no Raft system survives, and outside what raftkv promises.
 *
 * Why every member and not a majority. The member that counted this one's vote may be any one of them:
 * in a 5-member cluster the candidate this member voted for may be the one member left out of a
 * majority's answers.
 *
 * Why "late" is safe. No member counted anything this member said, so it has no promise to forget; it
 * starts with term 0 and an empty log, and the leader brings it up to date by entries or a snapshot,
 * exactly as it would a member that started after the others. And members that really are all new
 * cannot disagree: one that answers "bootstrapping" holds nothing and has not been seen (it sends no
 * message and has no incarnation until its check passes).
 *
 * Unreachable or still-starting members mean "wait", never "new" or "late": the cost is that a
 * brand-new cluster forms only once every member has started once, which Kubernetes' parallel pod start
 * gives at once, and that a member that lost its disk waits while any member is down.
 */
export function judgeBootstrap(answers: ReadonlyMap<NodeId, ProbeAnswer>): BootstrapVerdict {
  const waitingFor: NodeId[] = [];
  let holder: HolderEvidence | undefined;
  for (const [peer, answer] of [...answers].sort((a, b) => a[0] - b[0])) {
    switch (answer.kind) {
      case "running":
        if (answer.term > 0 || answer.lastIndex > 0 || answer.snapshotIndex > 0) {
          const evidence = { peer, term: answer.term, lastIndex: answer.lastIndex, snapshotIndex: answer.snapshotIndex };
          if (answer.knowsAsker) return { kind: "exists", evidence };
          holder ??= evidence;
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
  if (waitingFor.length > 0) return { kind: "wait", waitingFor };
  return holder === undefined ? { kind: "new" } : { kind: "late", evidence: holder };
}

/** This member lost its data directory while the cluster it belongs to goes on: it must not start. */
export class MemberDataLostError extends Error {
  override readonly name = "MemberDataLostError";
  constructor(
    readonly selfId: NodeId,
    readonly evidence: HolderEvidence,
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
 * Asks every other member until judgeBootstrap decides. Resolves with the verdict when this member may
 * start ("new" or "late"); rejects with MemberDataLostError when it lost its data, or with the signal's
 * reason when aborted. Waits as long as it
 * must: an empty member that cannot reach its peers does nothing else (it neither votes nor campaigns).
 */
export async function runBootstrapCheck(o: BootstrapCheckOptions): Promise<Extract<BootstrapVerdict, { kind: "new" } | { kind: "late" }>> {
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
    if (verdict.kind === "new" || verdict.kind === "late") return verdict;
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
