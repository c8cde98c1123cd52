import { expect } from "vitest";
import type { Entry, NodeId } from "../../src/core/index.js";
import type { Network } from "./network.js";

/** How an entry reads in a failure message: its term and its command. */
function describeEntry(entry: Entry): string {
  return `term ${entry.term} ${entry.type} "${new TextDecoder().decode(entry.data)}"`;
}

/** Raft's State Machine Safety: no two nodes apply different entries at one index. */
export function expectStateMachineSafety(net: Network): void {
  const byIndex = new Map<number, string>();
  for (const id of net.ids) {
    for (const entry of net.appliedOf(id)) {
      const seen = describeEntry(entry);
      const first = byIndex.get(entry.index);
      if (first === undefined) byIndex.set(entry.index, seen);
      else expect(seen, `node ${id} applied another entry at index ${entry.index}`).toBe(first);
    }
  }
}

/** Every node applied exactly the same commands, in the same order (after the cluster converged). */
export function expectSameAppliedData(net: Network, ids: readonly NodeId[] = net.ids): void {
  const [first, ...rest] = ids;
  if (first === undefined) return;
  for (const id of rest) expect(net.appliedData(id), `node ${id} versus node ${first}`).toEqual(net.appliedData(first));
}

/** The terms of a node's log, index 1 first: reads like the paper's figures ("1 1 2 3 3"). */
export function logTerms(net: Network, id: NodeId): number[] {
  const storage = net.storage(id);
  const terms: number[] = [];
  for (let i = storage.firstIndex(); i <= storage.lastIndex(); i++) terms.push(storage.term(i));
  return terms;
}
