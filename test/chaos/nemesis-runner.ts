import { assert } from "../../src/lib/assert.js";
import { createPrng } from "../../src/lib/prng.js";
import type { NetworkFault } from "./network.js";
import { describeFault, type FaultSpec, type PlannedFault, type Target } from "./nemesis-plan.js";
import { allLinks, linkName, partitionCut, type DirectedLink } from "./partitions.js";

/**
 * Executes a nemesis plan against the live cluster at the planned times, resolving "the leader" when
 * each fault starts, and records what really happened (the timeline the report draws). Faults run
 * concurrently: a fault's heal waits only for its own start, never for other faults.
 */
export interface NemesisControl {
  readonly ids: readonly number[];
  /** The current leader, or undefined when none answers. */
  leader(): Promise<number | undefined>;
  /** kill -9; resolves once the process is gone. */
  kill(id: number): Promise<void>;
  /** Starts a killed node again on its data directory. */
  restart(id: number): void;
  /** Deletes a killed node's data directory (a lost disk); restart() then starts it on nothing. */
  wipe(id: number): void;
  pause(id: number): void;
  resume(id: number): void;
  /** True when the node's process is up (running or paused). */
  isUp(id: number): boolean;
  addNetworkFault(faultId: number, fault: NetworkFault): void;
  removeNetworkFault(faultId: number): void;
  transferLeadership(to: number): Promise<number>;
}

export interface TimelineEntry {
  readonly faultId: number;
  readonly kind: FaultSpec["kind"];
  /** The plan's words, e.g. "kill -9 the leader, restart on heal". */
  readonly planned: string;
  readonly plannedStartMs: number;
  /** Milliseconds after the workload started. */
  startMs: number;
  /** When it healed; undefined while active (or for a fault that never applied). */
  endMs: number | undefined;
  /** The nodes it was aimed at, once resolved. */
  nodes: number[];
  /** The directed links it affected, for network faults. */
  links: string[];
  status: "pending" | "active" | "healed" | "skipped" | "failed" | "done";
  /** What happened, e.g. "leader was 2", "no leader answered; chose node 1", the error of a transfer. */
  note: string;
}

export interface NemesisRunnerOptions {
  readonly control: NemesisControl;
  readonly plan: readonly PlannedFault[];
  /** Milliseconds since the workload started. */
  readonly nowMs: () => number;
}

export class NemesisRunner {
  readonly timeline: TimelineEntry[] = [];
  /**
   * Node -> the fault holding its process (kill or pause), so two never fight over one process. A disk
   * loss holds its node for good: the node refuses to start and no other fault may revive or kill it.
   */
  private readonly processFaults = new Map<number, number>();
  private readonly starts = new Map<number, Promise<void>>();
  private readonly inflight = new Set<Promise<void>>();
  private stopped = false;
  private wake: (() => void) | undefined;

  constructor(private readonly o: NemesisRunnerOptions) {}

  /** Runs the plan to its end (or until stop()); every fault it started is healed when it returns. */
  async run(): Promise<void> {
    const events = this.o.plan
      .flatMap((fault) => [
        { atMs: fault.startMs, fault, start: true },
        { atMs: fault.endMs, fault, start: false },
      ])
      .filter((e) => e.start || (e.fault.spec.kind !== "transfer" && e.fault.spec.kind !== "disk-loss"))
      .sort((a, b) => a.atMs - b.atMs || (a.start === b.start ? a.fault.id - b.fault.id : a.start ? 1 : -1));
    for (const event of events) {
      await this.sleepUntil(event.atMs);
      if (this.stopped) break;
      this.track(event.start ? this.startFault(event.fault) : this.healFault(event.fault));
    }
    await this.healEverything();
  }

  /** The nodes that lost their disk (a disk-loss fault that was carried out), with when. */
  diskLosses(): { readonly id: number; readonly faultId: number; readonly atMs: number }[] {
    return this.timeline.flatMap((e) =>
      e.kind === "disk-loss" && e.status === "done" && e.nodes[0] !== undefined
        ? [{ id: e.nodes[0], faultId: e.faultId, atMs: e.startMs }]
        : [],
    );
  }

  /** Ends the schedule early; run() then heals what is active and returns. */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private track(task: Promise<void>): void {
    this.inflight.add(task);
    void task.finally(() => this.inflight.delete(task));
  }

  private sleepUntil(atMs: number): Promise<void> {
    const waitMs = atMs - this.o.nowMs();
    if (waitMs <= 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, waitMs);
      const wake = (): void => done();
      this.wake = wake;
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
    });
  }

  private startFault(fault: PlannedFault): Promise<void> {
    const entry: TimelineEntry = {
      faultId: fault.id,
      kind: fault.spec.kind,
      planned: describeFault(fault.spec),
      plannedStartMs: fault.startMs,
      startMs: this.o.nowMs(),
      endMs: undefined,
      nodes: [],
      links: [],
      status: "pending",
      note: "",
    };
    this.timeline.push(entry);
    const started = this.apply(fault, entry).catch((error: unknown) => {
      entry.status = "failed";
      entry.note = `${entry.note}${entry.note === "" ? "" : "; "}${error instanceof Error ? error.message : String(error)}`;
    });
    this.starts.set(fault.id, started);
    return started;
  }

  private async resolve(target: Target, entry: TimelineEntry): Promise<number> {
    if (target.kind === "node") return target.id;
    const leader = await this.o.control.leader();
    if (leader !== undefined) {
      entry.note = `the leader was node ${leader}`;
      return leader;
    }
    // No leader answered (an election, or the leader is down): aim at the lowest node that is up.
    const fallback = this.o.control.ids.find((id) => this.o.control.isUp(id) && !this.processFaults.has(id)) ?? this.o.control.ids[0] ?? 1;
    entry.note = `no leader answered; chose node ${fallback}`;
    return fallback;
  }

  private async apply(fault: PlannedFault, entry: TimelineEntry): Promise<void> {
    const spec = fault.spec;
    const control = this.o.control;
    switch (spec.kind) {
      case "kill":
      case "pause": {
        const id = await this.resolve(spec.target, entry);
        entry.nodes = [id];
        const holder = this.processFaults.get(id);
        if (holder !== undefined || !control.isUp(id)) {
          entry.status = "skipped";
          entry.note = `${entry.note}${entry.note === "" ? "" : "; "}node ${id} is ${holder !== undefined ? `held by fault ${holder}` : "down"}`;
          return;
        }
        this.processFaults.set(id, fault.id);
        entry.startMs = this.o.nowMs();
        entry.status = "active";
        if (spec.kind === "kill") await control.kill(id);
        else control.pause(id);
        return;
      }
      case "partition": {
        const focus = await this.resolve(spec.focus, entry);
        const cut = partitionCut(spec.shape, control.ids, focus, createPrng(spec.seed));
        entry.nodes = [focus];
        entry.links = cut.map(linkName);
        entry.startMs = this.o.nowMs();
        entry.status = "active";
        control.addNetworkFault(fault.id, { kind: "cut", links: cut, mode: spec.mode });
        return;
      }
      case "latency": {
        let links: DirectedLink[];
        if (spec.scope.kind === "all") {
          links = allLinks(control.ids);
        } else {
          const id = await this.resolve(spec.scope, entry);
          entry.nodes = [id];
          links = allLinks(control.ids).filter((l) => l.from === id || l.to === id);
        }
        entry.links = links.map(linkName);
        entry.startMs = this.o.nowMs();
        entry.status = "active";
        control.addNetworkFault(fault.id, { kind: "latency", links, delayMs: spec.delayMs });
        return;
      }
      case "disk-loss": {
        let id = await this.resolve(spec.target, entry);
        const holder = this.processFaults.get(id);
        if (holder !== undefined || !control.isUp(id)) {
          // The one disk loss of the run should happen: another node that is up and free takes it.
          const other = control.ids.find((candidate) => control.isUp(candidate) && !this.processFaults.has(candidate));
          const why = `node ${id} is ${holder !== undefined ? `held by fault ${holder}` : "down"}`;
          if (other === undefined) {
            entry.status = "skipped";
            entry.note = `${entry.note}${entry.note === "" ? "" : "; "}${why}, and so is every other node`;
            return;
          }
          entry.note = `${entry.note}${entry.note === "" ? "" : "; "}${why}; took node ${other}`;
          id = other;
        }
        entry.nodes = [id];
        this.processFaults.set(id, fault.id);
        entry.startMs = this.o.nowMs();
        entry.status = "active";
        await control.kill(id);
        control.wipe(id);
        control.restart(id);
        entry.status = "done";
        entry.endMs = this.o.nowMs();
        entry.note = `${entry.note}${entry.note === "" ? "" : "; "}restarted on an empty data directory`;
        return;
      }
      case "transfer": {
        entry.nodes = spec.to === 0 ? [] : [spec.to];
        entry.status = "active";
        const leader = await control.transferLeadership(spec.to);
        entry.status = "done";
        entry.endMs = this.o.nowMs();
        entry.note = `node ${leader} leads now`;
        return;
      }
    }
  }

  private async healFault(fault: PlannedFault): Promise<void> {
    await this.starts.get(fault.id);
    const entry = this.timeline.find((e) => e.faultId === fault.id);
    assert(entry !== undefined, () => `nemesis: healing fault ${fault.id} that never started`);
    if (entry.status !== "active") return;
    this.healEntry(entry, fault.spec);
  }

  private healEntry(entry: TimelineEntry, spec: FaultSpec): void {
    const control = this.o.control;
    const id = entry.nodes[0];
    if (spec.kind === "kill" && id !== undefined) {
      control.restart(id);
      this.processFaults.delete(id);
    } else if (spec.kind === "pause" && id !== undefined) {
      control.resume(id);
      this.processFaults.delete(id);
    } else if (spec.kind === "partition" || spec.kind === "latency") {
      control.removeNetworkFault(entry.faultId);
    }
    entry.status = "healed";
    entry.endMs = this.o.nowMs();
  }

  /** Waits for every started action (transfers included), then heals whatever is still active. */
  private async healEverything(): Promise<void> {
    await Promise.all([...this.inflight]);
    for (const entry of this.timeline) {
      if (entry.status !== "active") continue;
      const fault = this.o.plan.find((f) => f.id === entry.faultId);
      assert(fault !== undefined, () => `nemesis: fault ${entry.faultId} is not in the plan`);
      this.healEntry(entry, fault.spec);
    }
  }
}
