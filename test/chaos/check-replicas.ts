import type { WatchRecord } from "./history.js";
import type { Violation } from "./violation.js";

/**
 * State machine safety seen from outside: after healing, each node replays its watch history from
 * revision 1, and every node must tell the same story (the same changes at the same revisions), since
 * they applied the same committed log. Nodes whose history is no longer retained are left out.
 */
export function eventKey(event: WatchRecord): string {
  return `${event.type} ${event.key}=${event.value ?? ""}`;
}

/** revision -> the sorted descriptions of its events; duplicates (a resumed watch) collapse. */
export function eventsByRevision(events: readonly WatchRecord[]): Map<number, string[]> {
  const sets = new Map<number, Set<string>>();
  for (const e of events) {
    const set = sets.get(e.revision);
    if (set === undefined) sets.set(e.revision, new Set([eventKey(e)]));
    else set.add(eventKey(e));
  }
  return new Map([...sets].map(([revision, set]) => [revision, [...set].sort()]));
}

export function checkReplicas(
  histories: ReadonlyMap<number, readonly WatchRecord[]>,
  upToRevision: number,
  label: (id: number) => string = (id) => `node ${id}`,
): Violation[] {
  const entries = [...histories].sort(([a], [b]) => a - b);
  const reference = entries[0];
  if (reference === undefined) return [];
  const [referenceId, referenceEvents] = reference;
  const expected = eventsByRevision(referenceEvents);
  const violations: Violation[] = [];
  for (const [id, events] of entries.slice(1)) {
    const actual = eventsByRevision(events);
    for (let revision = 1; revision <= upToRevision; revision++) {
      const a = expected.get(revision)?.join("; ") ?? "(nothing)";
      const b = actual.get(revision)?.join("; ") ?? "(nothing)";
      if (a !== b) {
        violations.push({
          kind: "replica-divergence",
          message: `${label(referenceId)} and ${label(id)} disagree at revision ${revision}: ${label(referenceId)} has ${a}, ${label(id)} has ${b}`,
          ops: [],
        });
        break;
      }
    }
  }
  return violations;
}
