import { NodeRole } from "../../gen/raftkv/v1/cluster_pb.js";
import type { EndpointStatus } from "../../src/rpc/client/index.js";
import type { Violation } from "./violation.js";

/**
 * Samples every node's own view (Status) through the run: who leads in which term, commit and applied
 * indexes. The samples explain a report (who led when, how far a node lagged) and give one more safety
 * check for free: two nodes must never both lead the same term (Election Safety, Raft paper Figure 3).
 */
export interface StatusSample {
  /** Milliseconds after the workload started. */
  readonly atMs: number;
  /** The node (slot) asked. */
  readonly node: number;
  /** Undefined when the node did not answer. */
  readonly role?: string;
  /** The member id the node answered with (it changes when the node rejoins under a new id). */
  readonly member?: number;
  readonly term?: number;
  readonly leader?: number;
  readonly commit?: number;
  readonly applied?: number;
}

/** Most samples kept; beyond it sampling stops (a 1-hour run at 500 ms and 5 nodes needs 36,000). */
export const statusSamplesMax = 50_000;

export function toSamples(atMs: number, ids: readonly number[], answers: readonly EndpointStatus[]): StatusSample[] {
  return ids.map((node, i) => {
    const status = answers[i]?.status?.status;
    if (status === undefined) return { atMs, node };
    return {
      atMs,
      node,
      role: NodeRole[status.role] ?? String(status.role),
      member: Number(status.id),
      term: Number(status.term),
      leader: Number(status.leader),
      commit: Number(status.commitIndex),
      applied: Number(status.appliedIndex),
    };
  });
}

export class StatusSampler {
  readonly samples: StatusSample[] = [];
  private stopped = false;
  private done: Promise<void> = Promise.resolve();

  constructor(
    private readonly ids: readonly number[],
    private readonly statusAll: () => Promise<EndpointStatus[]>,
    private readonly nowMs: () => number,
    private readonly intervalMs: number,
  ) {}

  start(): void {
    this.done = (async () => {
      while (!this.stopped && this.samples.length + this.ids.length <= statusSamplesMax) {
        const atMs = this.nowMs();
        this.samples.push(...toSamples(atMs, this.ids, await this.statusAll()));
        const waitMs = this.intervalMs - (this.nowMs() - atMs);
        if (waitMs > 0 && !this.stopped) await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
  }
}

/**
 * Two different members that reported being leader of the same term. Members, not nodes: a node that
 * rejoined is another member (a new id, an empty log), and two members on one node are two voters.
 */
export function checkOneLeaderPerTerm(samples: readonly StatusSample[]): Violation[] {
  const leaderOf = new Map<number, StatusSample>();
  const violations: Violation[] = [];
  const reported = new Set<number>();
  for (const sample of samples) {
    if (sample.role !== "LEADER" || sample.term === undefined) continue;
    const first = leaderOf.get(sample.term);
    if (first === undefined) {
      leaderOf.set(sample.term, sample);
    } else if ((first.member ?? first.node) !== (sample.member ?? sample.node) && !reported.has(sample.term)) {
      reported.add(sample.term);
      const who = (s: StatusSample): string =>
        `node ${s.node}${s.member !== undefined && s.member !== s.node ? ` (member ${s.member})` : ""}`;
      violations.push({
        kind: "two-leaders",
        message: `${who(first)} (at ${Math.round(first.atMs)} ms) and ${who(sample)} (at ${Math.round(sample.atMs)} ms) both reported being leader of term ${sample.term}`,
        ops: [],
      });
    }
  }
  return violations;
}
