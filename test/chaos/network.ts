import { assert } from "../../src/lib/assert.js";
import type { CutMode } from "./nemesis-plan.js";
import { allLinks, linkName, type DirectedLink } from "./partitions.js";
import { linkHealthy, type LinkState, type TcpProxy } from "./tcp-proxy.js";

/**
 * The peer network of the cluster under test: one proxy per directed link, and the faults currently
 * laid on it. Faults compose: a link cut by two partitions stays cut until both heal, and the harshest
 * cut wins (reset > drop > stall); latencies take the largest.
 */
export type NetworkFault =
  | { readonly kind: "cut"; readonly links: readonly DirectedLink[]; readonly mode: CutMode }
  | { readonly kind: "latency"; readonly links: readonly DirectedLink[]; readonly delayMs: number };

const harshness: Readonly<Record<LinkState["mode"], number>> = { pass: 0, stall: 1, drop: 2, reset: 3 };

/** The state of every directed link under a set of active faults. */
export function linkStates(ids: readonly number[], faults: Iterable<NetworkFault>): Map<string, LinkState> {
  const states = new Map<string, LinkState>(allLinks(ids).map((l) => [linkName(l), linkHealthy]));
  for (const fault of faults) {
    for (const link of fault.links) {
      const name = linkName(link);
      const current = states.get(name);
      assert(current !== undefined, () => `network: fault on unknown link ${name}`);
      if (fault.kind === "cut") {
        if (harshness[fault.mode] > harshness[current.mode]) states.set(name, { ...current, mode: fault.mode });
      } else if (fault.delayMs > current.delayMs) {
        states.set(name, { ...current, delayMs: fault.delayMs });
      }
    }
  }
  return states;
}

export class ChaosNetwork {
  private readonly active = new Map<number, NetworkFault>();

  constructor(
    private readonly ids: readonly number[],
    /** Keyed by linkName. */
    private readonly proxies: ReadonlyMap<string, TcpProxy>,
  ) {
    for (const link of allLinks(ids)) assert(proxies.has(linkName(link)), () => `network: no proxy for ${linkName(link)}`);
  }

  /** Lays fault `id` on the network (replacing an earlier fault with the same id). */
  add(id: number, fault: NetworkFault): void {
    this.active.set(id, fault);
    this.apply();
  }

  remove(id: number): void {
    if (this.active.delete(id)) this.apply();
  }

  healAll(): void {
    this.active.clear();
    this.apply();
  }

  get faultCount(): number {
    return this.active.size;
  }

  stats(): ReturnType<TcpProxy["stats"]>[] {
    return [...this.proxies.values()].map((p) => p.stats());
  }

  private apply(): void {
    for (const [name, state] of linkStates(this.ids, this.active.values())) {
      const proxy = this.proxies.get(name);
      assert(proxy !== undefined, () => `network: no proxy for ${name}`);
      if (proxy.state.mode !== state.mode || proxy.state.delayMs !== state.delayMs) proxy.set(state);
    }
  }
}
