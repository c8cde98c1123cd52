import { assert } from "../../src/lib/assert.js";
import type { Prng } from "../../src/lib/prng.js";

/**
 * Network partitions as sets of cut directed links. A directed link `a->b` carries what node a sends to
 * node b (see tcp-proxy.ts); a symmetric partition cuts both directions, a one-way fault only one.
 *
 * Shapes (Jepsen's usual repertoire):
 * - `halves`: a random majority and minority that cannot talk to each other.
 * - `isolate`: one node (often the leader) cut off from everyone.
 * - `bridge`: two halves that cannot talk, except through one node that sees both sides. Every node
 *   but the bridge sees only a minority-plus-bridge, so the bridge is the only node that can win an
 *   election with votes from both halves; a leader elsewhere must not think it still leads.
 * - `ring`: every node talks only to its two ring neighbours, so each sees a majority of a 5-node
 *   cluster, but no two nodes see the same majority.
 * - `one-way-out`: one node's outgoing links are cut (it hears everyone, nobody hears it).
 * - `one-way-in`: one node's incoming links are cut (everyone hears it, it hears nobody): a leader
 *   whose heartbeats still arrive but who never hears an acknowledgement.
 */
export type PartitionShape = "halves" | "isolate" | "bridge" | "ring" | "one-way-out" | "one-way-in";

export const partitionShapes: readonly PartitionShape[] = ["halves", "isolate", "bridge", "ring", "one-way-out", "one-way-in"];

export interface DirectedLink {
  readonly from: number;
  readonly to: number;
}

export function linkName(link: DirectedLink): string {
  return `${link.from}->${link.to}`;
}

/** Every directed link between distinct nodes. */
export function allLinks(ids: readonly number[]): DirectedLink[] {
  const links: DirectedLink[] = [];
  for (const from of ids) for (const to of ids) if (from !== to) links.push({ from, to });
  return links;
}

/** Cuts every link between nodes of different groups, both ways. */
export function cutBetweenGroups(groups: readonly (readonly number[])[]): DirectedLink[] {
  const groupOf = new Map<number, number>();
  groups.forEach((group, index) => {
    for (const id of group) {
      assert(!groupOf.has(id), () => `partition: node ${id} is in two groups`);
      groupOf.set(id, index);
    }
  });
  return allLinks([...groupOf.keys()].sort((a, b) => a - b)).filter((l) => groupOf.get(l.from) !== groupOf.get(l.to));
}

/** A uniformly shuffled copy. */
export function shuffled<T>(items: readonly T[], prng: Prng): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = prng.int(0, i);
    const a = copy[i] as T;
    copy[i] = copy[j] as T;
    copy[j] = a;
  }
  return copy;
}

/** A majority and a minority, drawn at random. */
export function halves(ids: readonly number[], prng: Prng): [number[], number[]] {
  const order = shuffled(ids, prng);
  const minority = Math.floor((ids.length - 1) / 2);
  return [order.slice(minority).sort((a, b) => a - b), order.slice(0, minority).sort((a, b) => a - b)];
}

/**
 * The directed links a shape cuts. `focus` is the node the shape is about (the isolated node, the
 * bridge, the one-way node); `prng` decides the halves and the ring order.
 */
export function partitionCut(shape: PartitionShape, ids: readonly number[], focus: number, prng: Prng): DirectedLink[] {
  assert(ids.length >= 2, "partition: needs at least two nodes");
  assert(ids.includes(focus), () => `partition: focus ${focus} is not a node`);
  const others = ids.filter((id) => id !== focus);
  switch (shape) {
    case "halves":
      return cutBetweenGroups(halves(ids, prng));
    case "isolate":
      return cutBetweenGroups([[focus], others]);
    case "bridge": {
      // The focus stays connected to everyone; the others split into two sides that cannot talk.
      const order = shuffled(others, prng);
      const half = Math.ceil(order.length / 2);
      const sides = [order.slice(0, half), order.slice(half)];
      return cutBetweenGroups(sides);
    }
    case "ring": {
      // With fewer than five nodes every node is a ring neighbour of every other: nothing to cut, so a
      // small cluster gets a bridge instead (the closest shape that still cuts something).
      if (ids.length < 5) return partitionCut("bridge", ids, focus, prng);
      const order = shuffled(ids, prng);
      const position = new Map(order.map((id, i) => [id, i]));
      const n = order.length;
      return allLinks(ids).filter((l) => {
        const d = Math.abs((position.get(l.from) ?? 0) - (position.get(l.to) ?? 0));
        return d !== 1 && d !== n - 1;
      });
    }
    case "one-way-out":
      return others.map((to) => ({ from: focus, to }));
    case "one-way-in":
      return others.map((from) => ({ from, to: focus }));
  }
}

/**
 * Which nodes can reach a majority both ways through uncut links, directly. Used in the timeline to say
 * what a partition left standing, and in tests of the shapes.
 */
export function nodesWithMajority(ids: readonly number[], cut: readonly DirectedLink[]): number[] {
  const cutSet = new Set(cut.map(linkName));
  const majority = Math.floor(ids.length / 2) + 1;
  return ids.filter((id) => {
    const reachable = ids.filter(
      (other) => other === id || (!cutSet.has(linkName({ from: id, to: other })) && !cutSet.has(linkName({ from: other, to: id }))),
    );
    return reachable.length >= majority;
  });
}
