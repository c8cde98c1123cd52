import { describe, expect, it } from "vitest";
import type { Entry, Message, NodeId } from "../../src/core/index.js";
import { createPrng, type Prng } from "../../src/lib/prng.js";
import { Network } from "./network.js";

/**
 * A seeded fuzz test of the core's message handling. Each sequence starts from a three-node cluster
 * with a leader and then mixes, at random:
 *  - real traffic delivered with network faults (loss, duplication, reordering, late replays);
 *  - real messages with one field changed to a random value: a plausible one (an index or term near
 *    the real ones, another addressee) or garbage (negative, fractional, NaN, huge);
 *  - local inputs: ticks, proposals, reads, transfers, log compaction, crashes and restarts.
 * Nothing may throw, and after every step each node passes RaftNode.checkInvariants() (Network.flush
 * runs it before and after every Ready) and keeps what the core cannot check alone: its term and commit
 * index never go down (while it runs; a restart may forget a commit index that was not yet persisted).
 *
 * FUZZ_SEQUENCES and FUZZ_STEPS raise the number and length of sequences for a long run (the defaults
 * keep CI fast); a failure
 * names the seed and step, and FUZZ_SEED=<seed> replays that one sequence.
 */
const sequencesDefault = 2_000;
const stepsPerSequence = Number(process.env.FUZZ_STEPS ?? 60);
/** Bounds the pool of past messages kept for replays and mutations. */
const pastMessagesMax = 64;

const ids: readonly NodeId[] = [1, 2, 3];
const garbageNumbers = [-1, -7, 0.5, 2.25, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 2 ** 60];

/** A random number for an index or term field: mostly plausible (near `near`), sometimes garbage. */
function randomNumber(prng: Prng, near: number): number {
  if (prng.chance(0.2)) return prng.pick(garbageNumbers);
  return Math.max(0, near + prng.int(-3, 3));
}

function mutateEntries(prng: Prng, entries: readonly Entry[], near: number): Entry[] {
  const copy = entries.slice();
  const at = prng.int(0, Math.max(0, copy.length - 1));
  const target = copy[at];
  switch (prng.int(0, 3)) {
    case 0:
      if (target !== undefined) copy[at] = { ...target, index: randomNumber(prng, target.index) };
      break;
    case 1:
      if (target !== undefined) copy[at] = { ...target, term: randomNumber(prng, target.term) };
      break;
    case 2:
      copy.reverse();
      break;
    default:
      copy.push({ index: randomNumber(prng, near), term: randomNumber(prng, 1), type: "normal", data: new Uint8Array(3) });
      break;
  }
  return copy;
}

/** A copy of a real message with one field changed. */
function mutate(prng: Prng, m: Message): Message {
  const roll = prng.int(0, 3);
  if (roll === 0) return { ...m, term: randomNumber(prng, m.term) };
  if (roll === 1) return { ...m, to: prng.pick(ids), from: prng.chance(0.1) ? prng.int(0, 5) : m.from };
  switch (m.type) {
    case "append":
      if (prng.chance(0.3)) return { ...m, entries: mutateEntries(prng, m.entries, m.prevIndex + 1) };
      if (prng.chance(0.5)) return { ...m, prevIndex: randomNumber(prng, m.prevIndex), prevTerm: randomNumber(prng, m.prevTerm) };
      return { ...m, commit: randomNumber(prng, m.commit) };
    case "appendResp":
      return {
        ...m,
        reject: prng.chance(0.5),
        index: randomNumber(prng, m.index),
        hintIndex: randomNumber(prng, m.hintIndex),
        hintTerm: randomNumber(prng, m.hintTerm),
      };
    case "heartbeat":
      return prng.chance(0.5) ? { ...m, commit: randomNumber(prng, m.commit) } : { ...m, readRound: randomNumber(prng, m.readRound) };
    case "heartbeatResp":
      return { ...m, readRound: randomNumber(prng, m.readRound) };
    case "vote":
      return {
        ...m,
        preVote: prng.chance(0.5),
        lastLogIndex: randomNumber(prng, m.lastLogIndex),
        lastLogTerm: randomNumber(prng, m.lastLogTerm),
        transfer: prng.chance(0.2),
      };
    case "voteResp":
      return { ...m, granted: !m.granted, preVote: prng.chance(0.5) };
    case "snapshot": {
      const meta = { ...m.snapshot.meta, index: randomNumber(prng, m.snapshot.meta.index), term: randomNumber(prng, m.snapshot.meta.term) };
      return { ...m, snapshot: { ...m.snapshot, meta } };
    }
    case "readIndexResp":
      return { ...m, index: randomNumber(prng, m.index) };
    case "readIndex":
    case "timeoutNow":
      return { ...m, term: randomNumber(prng, m.term) };
  }
}

/** What must never go down while a node runs. */
interface Watermark {
  term: number;
  commit: number;
}

class FuzzRun {
  readonly net: Network;
  private readonly past: Message[] = [];
  private readonly marks = new Map<NodeId, Watermark>();
  private nextRequestId = 1;

  constructor(
    private readonly prng: Prng,
    seed: number,
  ) {
    this.net = new Network(ids, { seed });
    this.net.tickUntilLeader();
  }

  step(): string {
    const { net, prng } = this;
    const roll = prng.next();
    if (roll < 0.3) return this.deliverWithFaults();
    if (roll < 0.4) return this.replayPast();
    if (roll < 0.55) return this.injectMutated();
    if (roll < 0.75) {
      // Time passes for everyone, so that elections and heartbeats keep the cluster moving.
      for (const id of ids) if (net.isUp(id)) net.node(id).tick();
      return "tick";
    }
    const id = prng.pick(ids);
    if (!net.isUp(id)) {
      net.start(id);
      this.marks.delete(id);
      return `start ${id}`;
    }
    const node = net.node(id);
    if (roll < 0.9) {
      // Mostly to the leader, as clients would.
      const target = prng.chance(0.8) ? (net.newestLeader() ?? id) : id;
      net.node(target).propose(new Uint8Array(prng.int(0, 40)));
      return `propose on ${target}`;
    }
    if (roll < 0.95) {
      node.readIndex(this.nextRequestId++);
      return `readIndex on ${id}`;
    }
    if (roll < 0.97) {
      node.transferLeadership(prng.pick(ids));
      return `transferLeadership on ${id}`;
    }
    if (roll < 0.99) {
      // Compaction as the driver does it, up to what the state machine applied (so snapshots travel).
      const { applied, conf } = net.status(id);
      net.storage(id).createSnapshot(applied, conf, new Uint8Array(0));
      return `compact ${id} to ${applied}`;
    }
    net.crash(id);
    return `crash ${id}`;
  }

  /** Checks the invariants of every live node; processes pending Readys first, as the driver would. */
  check(): void {
    this.net.flush();
    for (const id of ids) {
      if (!this.net.isUp(id)) continue;
      const { term, commit } = this.net.status(id);
      const mark = this.marks.get(id);
      if (mark !== undefined && term < mark.term) throw new Error(`node ${id}: term went down from ${mark.term} to ${term}`);
      if (mark !== undefined && commit < mark.commit) throw new Error(`node ${id}: commit went down from ${mark.commit} to ${commit}`);
      this.marks.set(id, { term, commit });
    }
  }

  private remember(messages: readonly Message[]): void {
    for (const m of messages) {
      if (this.past.length >= pastMessagesMax) this.past.splice(this.prng.int(0, this.past.length - 1), 1);
      this.past.push(m);
    }
  }

  private deliverWithFaults(): string {
    const queued = this.net.takeQueued();
    this.remember(queued);
    const batch: Message[] = [];
    for (const m of queued) {
      const roll = this.prng.next();
      if (roll < 0.1) continue;
      batch.push(m);
      if (roll < 0.2) batch.push(m);
    }
    // Reorder: a random shuffle of the batch.
    for (let i = batch.length - 1; i > 0; i--) {
      const j = this.prng.int(0, i);
      const a = batch[i];
      const b = batch[j];
      if (a === undefined || b === undefined) continue;
      batch[i] = b;
      batch[j] = a;
    }
    for (const m of batch) if (this.net.isUp(m.to)) this.net.node(m.to).step(m);
    return `deliver ${batch.length} of ${queued.length}`;
  }

  private replayPast(): string {
    if (this.past.length === 0) return "replay (none)";
    const m = this.prng.pick(this.past);
    if (this.net.isUp(m.to)) this.net.node(m.to).step(m);
    return `replay ${JSON.stringify(m, jsonable)}`;
  }

  private injectMutated(): string {
    if (this.past.length === 0) return "mutate (none)";
    const m = mutate(this.prng, this.prng.pick(this.past));
    if (this.net.isUp(m.to)) this.net.node(m.to).step(m);
    return `inject ${JSON.stringify(m, jsonable)}`;
  }
}

/** JSON for failure messages: entry data as a length, NaN and infinities readable. */
function jsonable(key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) return `<${value.byteLength} bytes>`;
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return key === "snapshot" ? { meta: (value as { meta: unknown }).meta } : value;
}

function runSequence(seed: number): void {
  const run = new FuzzRun(createPrng(seed), seed);
  const trail: string[] = [];
  for (let step = 0; step < stepsPerSequence; step++) {
    try {
      trail.push(run.step());
      run.check();
    } catch (error) {
      const last = trail.slice(-5).join("\n    ");
      throw new Error(
        `seed ${seed}, step ${step}: ${String(error)}\n  last steps:\n    ${last}\n  replay: FUZZ_SEED=${seed} npx vitest run test/core/fuzz.test.ts`,
        { cause: error },
      );
    }
  }
}

const sequences = Number(process.env.FUZZ_SEQUENCES ?? sequencesDefault);
/** A long run gets time in proportion to its size (about 0.1 ms per step on a loaded machine, doubled). */
const timeoutMs = Math.max(60_000, sequences * stepsPerSequence * 0.2);

describe("fuzzed message sequences", () => {
  it("never throw and keep the core invariants", { timeout: timeoutMs }, () => {
    const only = process.env.FUZZ_SEED;
    const seeds = only === undefined ? Array.from({ length: sequences }, (_, i) => i + 1) : [Number(only)];
    for (const seed of seeds) runSequence(seed);
    expect(seeds.length).toBeGreaterThan(0);
  });
});
