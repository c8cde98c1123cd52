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
  /** Every node (slot), members or not. */
  readonly ids: readonly number[];
  /** The founding size: a shrink never goes below it, a replace starts only at it or above. */
  readonly baseSize: number;
  /** The nodes that hold a member now (whatever their process is doing): the ones a partition splits. */
  members(): readonly number[];
  /** Nodes that hold no member and run no process: where a grow starts one. */
  emptySlots(): readonly number[];
  /** The node that leads (not its member id), or undefined when none answers. */
  leader(): Promise<number | undefined>;
  /** kill -9; resolves once the process is gone. */
  kill(id: number): Promise<void>;
  /** Starts a killed node again on its data directory. */
  restart(id: number): void;
  /** Deletes a killed node's data directory (a lost disk); restart() then starts it on nothing. */
  wipe(id: number): void;
  pause(id: number): void;
  resume(id: number): void;
  /** True when the node holds a member and its process is up (running or paused). */
  isUp(id: number): boolean;
  /** Removes the node's member and waits for its process to exit with code 7; resolves with a note. */
  removeMember(id: number): Promise<string>;
  /** Starts the node on an empty data directory with --join and waits until it is a voter; resolves with a note. */
  joinMember(id: number): Promise<string>;
  addNetworkFault(faultId: number, fault: NetworkFault): void;
  removeNetworkFault(faultId: number): void;
  transferLeadership(to: number): Promise<number>;
}

/** How long a membership change waits for a node that lost its disk to refuse to start, before replacing it. */
const refusalWaitMsMax = 20_000;

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
  /**
   * The end of the faulty period (ms on nowMs). A membership change that waited for another one (or for
   * a disk loss) past it is skipped: it would run on a cluster without load, after the faults. Default:
   * none.
   */
  readonly endMs?: number;
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
  /**
   * The membership change or disk loss in progress, and its end. One at a time: a disk loss during a
   * membership change, or a change that starts while a node is losing its disk, could leave no live
   * majority (a removal next to a voter that will never answer again).
   */
  private structural: { readonly faultId: number; readonly kind: string; readonly done: Promise<void> } | undefined;
  /** Nodes whose lost disk a membership change replaced (its member removed, the node started with --join). */
  private readonly replaced = new Set<number>();
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
      .filter(
        (e) => e.start || (e.fault.spec.kind !== "transfer" && e.fault.spec.kind !== "disk-loss" && e.fault.spec.kind !== "membership"),
      )
      .sort((a, b) => a.atMs - b.atMs || (a.start === b.start ? a.fault.id - b.fault.id : a.start ? 1 : -1));
    for (const event of events) {
      await this.sleepUntil(event.atMs);
      if (this.stopped) break;
      this.track(event.start ? this.startFault(event.fault) : this.healFault(event.fault));
    }
    await this.healEverything();
  }

  /**
   * The nodes that lost their disk (a disk-loss fault that was carried out), with when, and whether a
   * membership change replaced the lost member since (removed it; the node then joined with --join).
   */
  diskLosses(): { readonly id: number; readonly faultId: number; readonly atMs: number; readonly replaced: boolean }[] {
    return this.timeline.flatMap((e) =>
      e.kind === "disk-loss" && e.status === "done" && e.nodes[0] !== undefined
        ? [{ id: e.nodes[0], faultId: e.faultId, atMs: e.startMs, replaced: this.replaced.has(e.nodes[0]) }]
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
        // The shape splits the members of the moment (a node that joined counts, an empty slot does not).
        const members = control.members();
        let focus = await this.resolve(spec.focus, entry);
        if (members.length < 2) {
          entry.status = "skipped";
          entry.note = `${entry.note}${entry.note === "" ? "" : "; "}fewer than two members`;
          return;
        }
        if (!members.includes(focus)) {
          const other = members[0] ?? focus;
          entry.note = `${entry.note}${entry.note === "" ? "" : "; "}node ${focus} holds no member; took node ${other}`;
          focus = other;
        }
        const cut = partitionCut(spec.shape, members, focus, createPrng(spec.seed));
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
        // Late or not, the run's one disk loss happens: its refusal is judged after the heal anyway.
        const release = await this.acquire(fault.id, "disk loss", entry, false);
        if (release === undefined) return;
        try {
          await this.loseDisk(fault, spec, entry);
        } finally {
          release();
        }
        return;
      }
      case "membership": {
        const release = await this.acquire(fault.id, "membership change", entry, true);
        if (release === undefined) return;
        try {
          await this.changeMembership(fault, spec, entry);
        } finally {
          release();
        }
        return;
      }
      case "transfer": {
        entry.nodes = spec.to === 0 ? [] : [spec.to];
        if (spec.to !== 0 && !control.members().includes(spec.to)) {
          // Its member was removed (a membership change in progress, or a shrink): nobody to hand over to.
          entry.status = "skipped";
          entry.note = `node ${spec.to} holds no member`;
          return;
        }
        entry.status = "active";
        const leader = await control.transferLeadership(spec.to);
        entry.status = "done";
        entry.endMs = this.o.nowMs();
        entry.note = `node ${leader} leads now`;
        return;
      }
    }
  }

  /**
   * A lost disk: kill -9, wipe, start again with the same flags (it must refuse to start). Skipped while
   * the cluster has fewer members than its founding size: losing one more voter could leave no majority
   * to replace it with.
   */
  private async loseDisk(fault: PlannedFault, spec: Extract<FaultSpec, { kind: "disk-loss" }>, entry: TimelineEntry): Promise<void> {
    const control = this.o.control;
    if (control.members().length < control.baseSize) {
      entry.status = "skipped";
      entry.note = `${entry.note}${entry.note === "" ? "" : "; "}only ${control.members().length} members: a lost disk now could leave no majority to replace it`;
      return;
    }
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
  }

  /**
   * Waits for the membership change or disk loss in progress to end, then takes the turn; returns the
   * function that ends it, or undefined when the run ended meanwhile (or its faulty period did, with
   * `skipPastEnd`: a membership change then would run without load and after the faults).
   */
  private async acquire(faultId: number, kind: string, entry: TimelineEntry, skipPastEnd: boolean): Promise<(() => void) | undefined> {
    while (this.structural !== undefined) {
      entry.note = `${entry.note}${entry.note === "" ? "" : "; "}waited for ${this.structural.kind} ${this.structural.faultId} to end`;
      await this.structural.done;
    }
    const endMs = this.o.endMs;
    if (this.stopped || (skipPastEnd && endMs !== undefined && this.o.nowMs() >= endMs)) {
      entry.status = "skipped";
      entry.note = `${entry.note}${entry.note === "" ? "" : "; "}the faulty period was over`;
      return undefined;
    }
    entry.startMs = this.o.nowMs();
    let end = (): void => undefined;
    this.structural = { faultId, kind, done: new Promise<void>((resolve) => (end = resolve)) };
    return () => {
      this.structural = undefined;
      end();
    };
  }

  /**
   * One membership change (see MembershipOp). A member that lost its disk and refused to start is
   * replaced first, whatever the plan says: until it is, it is a voter that will never answer, and
   * removing another member could leave no majority. The node changed is held (no kill or pause) from
   * the removal until it is a voter again.
   */
  private async changeMembership(
    fault: PlannedFault,
    spec: Extract<FaultSpec, { kind: "membership" }>,
    entry: TimelineEntry,
  ): Promise<void> {
    const control = this.o.control;
    const note = (text: string): void => {
      entry.note = `${entry.note}${entry.note === "" ? "" : "; "}${text}`;
    };
    const skip = (why: string): void => {
      entry.status = "skipped";
      note(why);
    };
    const lost = this.diskLosses().find((loss) => !loss.replaced);
    if (lost !== undefined) {
      // Its refusal comes once its process started and asked the others (seconds): wait for it, bounded.
      const deadline = this.o.nowMs() + refusalWaitMsMax;
      while (control.isUp(lost.id) && this.o.nowMs() < deadline && !this.stopped) await new Promise((resolve) => setTimeout(resolve, 100));
      if (control.isUp(lost.id)) return skip(`node ${lost.id} lost its disk and had not refused to start ${refusalWaitMsMax} ms later`);
      entry.nodes = [lost.id];
      note(`replaces node ${lost.id}, which lost its disk (planned: ${spec.op})`);
      await this.holding(lost.id, fault.id, entry, async () => {
        note(await control.removeMember(lost.id));
        this.replaced.add(lost.id);
        note(await control.joinMember(lost.id));
      });
      return;
    }
    switch (spec.op) {
      case "grow": {
        const slot = control.emptySlots().find((id) => !this.processFaults.has(id));
        if (slot === undefined) return skip("no empty slot to start a node in");
        entry.nodes = [slot];
        await this.holding(slot, fault.id, entry, async () => note(await control.joinMember(slot)));
        return;
      }
      case "replace":
      case "shrink": {
        const size = control.members().length;
        if (spec.op === "shrink" && size <= control.baseSize) return skip(`the cluster has ${size} members, its founding size`);
        if (spec.op === "replace" && size < control.baseSize) return skip(`the cluster has ${size} members, fewer than its founding size`);
        let id = await this.resolve(spec.target, entry);
        if (!control.isUp(id) || this.processFaults.has(id)) {
          const other = control.members().find((candidate) => control.isUp(candidate) && !this.processFaults.has(candidate));
          const why = `node ${id} is ${this.processFaults.has(id) ? `held by fault ${this.processFaults.get(id)}` : "not an up member"}`;
          if (other === undefined) return skip(`${why}, and so is every other node`);
          note(`${why}; took node ${other}`);
          id = other;
        }
        const slot = id;
        entry.nodes = [slot];
        await this.holding(slot, fault.id, entry, async () => {
          note(await control.removeMember(slot));
          if (spec.op === "replace") {
            if (control.isUp(slot) || control.members().includes(slot)) throw new Error(`node ${slot} is still running its removed member`);
            note(await control.joinMember(slot));
          }
        });
        return;
      }
    }
  }

  /** Runs a membership change on a node held against other process faults, and records it done. */
  private async holding(id: number, faultId: number, entry: TimelineEntry, change: () => Promise<void>): Promise<void> {
    this.processFaults.set(id, faultId);
    entry.startMs = this.o.nowMs();
    entry.status = "active";
    try {
      await change();
      entry.status = "done";
    } finally {
      entry.endMs = this.o.nowMs();
      this.processFaults.delete(id);
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
