import { create, toBinary } from "@bufbuild/protobuf";
import { CommandSchema, type Command, type CommandResult } from "../../../gen/raftkv/v1/command_pb.js";
import { CompareResult, CompareTarget, GetRequestSchema } from "../../../gen/raftkv/v1/kv_pb.js";
import type { NodeId } from "../../../src/core/index.js";
import type { Driver } from "../../../src/driver/node.js";
import {
  InvalidRequestError,
  NotLeaderError,
  OverloadedError,
  ReadFailedError,
  StoppedError,
  TooLargeError,
  UnknownOutcomeError,
} from "../../../src/driver/errors.js";
import { assert } from "../../../src/lib/assert.js";
import type { Prng } from "../../../src/lib/prng.js";
import type { KvInput, KvOutput, Operation, Outcome } from "../history.js";
import type { Scheduler } from "./virtual-clock.js";

/**
 * The clients of the driver simulator: sequential processes (one operation outstanding each, as
 * linearizability assumes) that talk to the real Driver API the way the rpc layer does:
 *
 * - put(key, unique value) and compare-and-swap (a Txn: compare the value, or version 0 for "absent",
 *   then put) go through `driver.mutate(command, signal)`;
 * - get(key) is `await driver.readBarrier(signal)` then `driver.store.get(...)`, on the node the client
 *   believes leads or on any node (followers ask the leader for the read index);
 * - every operation has a deadline: an AbortController aborted by a virtual timer.
 *
 * Outcomes follow src/driver/errors.ts: a NotLeaderError, OverloadedError, TooLargeError or
 * StoppedError means nothing was proposed (`fail`; a not-leader answer also tells the client where to
 * go); an UnknownOutcomeError means the write may still take effect (`unknown`); a failed read observed
 * nothing (`fail`). A crash of the node ends the operation `unknown` (the connection died without an
 * answer). A node that is down refuses the connection (`fail`). Anything else is a bug the simulator
 * reports (`unexpected`).
 */
export interface ClientsConfig {
  readonly clients: number;
  readonly keys: number;
  readonly thinkMsMax: number;
  readonly opTimeoutMs: number;
  /** Probability that a read goes to a random node instead of the believed leader. */
  readonly randomNodeReadRate: number;
}

/** How clients reach the processes. */
export interface ClientPort {
  readonly nodeIds: readonly NodeId[];
  /** The running process of a node, or undefined when it is down. */
  running(node: NodeId): { readonly driver: Driver; readonly instance: number } | undefined;
  /** An acknowledged write: the simulator checks that it is never lost. */
  acknowledged(opId: number, command: Uint8Array): void;
  unexpected(message: string): void;
  note(line: string): void;
}

/** An operation in flight on some process, which that process's crash ends. */
interface InFlight {
  readonly node: NodeId;
  readonly instance: number;
  readonly crashed: () => void;
}

export interface ClientStats {
  invoked: number;
  ok: number;
  failed: number;
  unknown: number;
}

export class Clients {
  readonly history: Operation[] = [];
  readonly stats: ClientStats = { invoked: 0, ok: 0, failed: 0, unknown: 0 };
  /** Logical time shared by every client: strictly increasing over calls and returns. */
  private clock = 0;
  private nextOpId = 1;
  private stopped = false;
  private readonly inFlight = new Set<InFlight>();
  private readonly keys: string[];
  private running = 0;

  constructor(
    private readonly config: ClientsConfig,
    private readonly prng: Prng,
    private readonly scheduler: Scheduler,
    private readonly port: ClientPort,
  ) {
    assert(config.clients > 0 && config.keys > 0, "clients: need clients and keys");
    this.keys = Array.from({ length: config.keys }, (_, i) => `k${i}`);
  }

  /** Clients still running an operation or thinking. */
  get active(): number {
    return this.running;
  }

  start(): void {
    for (let id = 1; id <= this.config.clients; id++) {
      this.running++;
      void this.loop(id, this.prng.fork()).finally(() => this.running--);
    }
  }

  /** No new operation starts; those in flight finish (by answer, deadline or crash). */
  stop(): void {
    this.stopped = true;
  }

  /** A process crashed: every operation waiting on it ends with an unknown outcome. */
  crashed(node: NodeId, instance: number): void {
    for (const op of [...this.inFlight]) if (op.node === node && op.instance === instance) op.crashed();
  }

  private async loop(clientId: number, prng: Prng): Promise<void> {
    let leaderGuess = prng.pick(this.port.nodeIds);
    const lastSeen = new Map<string, string | null>();
    await this.scheduler.sleep(prng.int(0, this.config.thinkMsMax));
    while (!this.stopped) {
      const id = this.nextOpId++;
      const key = prng.pick(this.keys);
      const roll = prng.next();
      let input: KvInput;
      if (roll < 0.4) input = { kind: "put", key, value: `${clientId}.${id}` };
      else if (roll < 0.75) input = { kind: "get", key };
      else input = { kind: "cas", key, expected: lastSeen.get(key) ?? null, value: `${clientId}.${id}` };
      const node = input.kind === "get" && prng.chance(this.config.randomNodeReadRate) ? prng.pick(this.port.nodeIds) : leaderGuess;
      const { outcome, leader } = await this.invoke(id, clientId, node, input);
      if (leader !== undefined) leaderGuess = leader === 0 ? prng.pick(this.port.nodeIds) : leader;
      if (outcome.status === "ok") {
        const output = outcome.output;
        if (output.kind === "get") lastSeen.set(key, output.value);
        else if (input.kind !== "get" && (output.kind === "put" || (output.kind === "cas" && output.swapped)))
          lastSeen.set(key, input.value);
      } else if (outcome.status === "unknown") {
        // A write of unknown fate may or may not have replaced the value: expect nothing in particular.
        lastSeen.delete(key);
      }
      await this.scheduler.sleep(prng.int(1, this.config.thinkMsMax));
    }
  }

  /**
   * Runs one operation to its outcome. `leader`: where the client should send its next request
   * (0: pick anew), when this one told it something.
   */
  private async invoke(
    id: number,
    clientId: number,
    node: NodeId,
    input: KvInput,
  ): Promise<{ outcome: Outcome; leader: NodeId | undefined }> {
    this.stats.invoked++;
    const call = ++this.clock;
    const callStep = this.scheduler.now;
    let leader: NodeId | undefined;
    const target = this.port.running(node);
    let outcome: Outcome;
    if (target === undefined) {
      outcome = { status: "fail", reason: `node ${node} is down`, retStep: this.scheduler.now };
      leader = 0;
    } else {
      const write = input.kind === "get" ? undefined : input;
      outcome = await new Promise<Outcome>((resolve) => {
        const abort = new AbortController();
        const deadline = this.scheduler.after(this.config.opTimeoutMs, () => abort.abort());
        const tracked: InFlight = {
          node,
          instance: target.instance,
          crashed: () => finish(() => ({ status: "unknown", reason: `node ${node} crashed` })),
        };
        let done = false;
        // The outcome is built when the answer is seen, so a read's value and the return time are those
        // of that moment.
        const finish = (outcomeNow: () => Outcome): void => {
          if (done) return;
          done = true;
          deadline.cancel();
          this.inFlight.delete(tracked);
          resolve(outcomeNow());
        };
        this.inFlight.add(tracked);
        const failed = (error: unknown): void =>
          finish(() => {
            const verdict = this.classify(error, input, node);
            if (verdict.leader !== undefined) leader = verdict.leader;
            return verdict.outcome;
          });
        if (write === undefined) {
          target.driver.readBarrier(abort.signal).then(
            () =>
              finish(() => ({
                status: "ok",
                output: { kind: "get", value: readValue(target.driver, input.key) },
                ret: ++this.clock,
                retStep: this.scheduler.now,
              })),
            failed,
          );
        } else {
          const command = toCommand(write);
          target.driver.mutate(command, abort.signal).then(
            (result) =>
              finish(() => {
                this.port.acknowledged(id, toBinary(CommandSchema, command));
                return { status: "ok", output: toOutput(write, result), ret: ++this.clock, retStep: this.scheduler.now };
              }),
            failed,
          );
        }
      });
    }
    if (outcome.status === "ok") this.stats.ok++;
    else if (outcome.status === "fail") this.stats.failed++;
    else this.stats.unknown++;
    const op: Operation = { id, clientId, input, call, callStep, outcome };
    this.history.push(op);
    this.port.note(`client ${clientId} op ${id} ${describeInput(input)} at node ${node}: ${describeOutcome(outcome)}`);
    return { outcome, leader };
  }

  private classify(error: unknown, input: KvInput, node: NodeId): { outcome: Outcome; leader?: NodeId } {
    const retStep = this.scheduler.now;
    const name = error instanceof Error ? error.name : "non-error";
    if (error instanceof NotLeaderError)
      return { outcome: { status: "fail", reason: `not the leader (node ${node})`, retStep }, leader: error.leaderId };
    if (
      error instanceof OverloadedError ||
      error instanceof TooLargeError ||
      error instanceof StoppedError ||
      error instanceof InvalidRequestError
    ) {
      return { outcome: { status: "fail", reason: `${name} at node ${node}`, retStep }, leader: 0 };
    }
    if (input.kind === "get" && error instanceof ReadFailedError)
      return { outcome: { status: "fail", reason: `read failed at node ${node}`, retStep } };
    if (input.kind !== "get" && error instanceof UnknownOutcomeError)
      return { outcome: { status: "unknown", reason: error.message }, leader: 0 };
    this.port.unexpected(
      `node ${node} answered ${describeInput(input)} with ${name}: ${error instanceof Error ? error.message : String(error)}`,
    );
    return { outcome: { status: "unknown", reason: `unexpected ${name}` } };
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function toCommand(input: Exclude<KvInput, { kind: "get" }>): Command {
  const key = encoder.encode(input.key);
  const put = { key, value: encoder.encode(input.value) };
  if (input.kind === "put") return create(CommandSchema, { op: { case: "put", value: put } });
  // "Absent" is version 0: a VALUE compare never holds on a missing key (etcd's semantics).
  const compare =
    input.expected === null
      ? { key, target: CompareTarget.VERSION, result: CompareResult.EQUAL, number: 0n }
      : { key, target: CompareTarget.VALUE, result: CompareResult.EQUAL, value: encoder.encode(input.expected) };
  return create(CommandSchema, { op: { case: "txn", value: { compare: [compare], success: [{ request: { case: "put", value: put } }] } } });
}

function toOutput(input: Exclude<KvInput, { kind: "get" }>, result: CommandResult): KvOutput {
  if (input.kind === "put") {
    assert(result.result.case === "put", () => `clients: a put answered with ${String(result.result.case)}`);
    return { kind: "put" };
  }
  assert(result.result.case === "txn", () => `clients: a cas answered with ${String(result.result.case)}`);
  return { kind: "cas", swapped: result.result.value.succeeded };
}

function readValue(driver: Driver, key: string): string | null {
  const kv = driver.store.get(create(GetRequestSchema, { key: encoder.encode(key) })).kv;
  return kv === undefined ? null : decoder.decode(kv.value);
}

function describeInput(input: KvInput): string {
  switch (input.kind) {
    case "put":
      return `put(${input.key}, ${input.value})`;
    case "get":
      return `get(${input.key})`;
    case "cas":
      return `cas(${input.key}, ${String(input.expected)} -> ${input.value})`;
  }
}

function describeOutcome(outcome: Outcome): string {
  switch (outcome.status) {
    case "ok": {
      const o = outcome.output;
      return `ok ${o.kind === "get" ? String(o.value) : o.kind === "cas" ? String(o.swapped) : ""}`.trimEnd();
    }
    case "fail":
      return `fail (${outcome.reason})`;
    case "unknown":
      return `unknown (${outcome.reason})`;
  }
}
