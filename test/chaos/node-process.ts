import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readSync, fstatSync, statSync } from "node:fs";
import { join } from "node:path";
import { assert } from "../../src/lib/assert.js";
import type { Reaper } from "./reaper.js";

/**
 * One real `raftkv serve` process of the cluster under test, with the signals the nemesis sends it.
 * Its stdout and stderr go to a log file in the run's results folder (a file, not a pipe, so a node
 * that logs a lot never waits on the harness, and the log survives the harness).
 */
export type NodeLifecycle =
  | { readonly kind: "down"; readonly why: "not-started" | "killed" | "stopped" }
  | { readonly kind: "running"; readonly child: ChildProcess; readonly pid: number; readonly exited: Promise<void> }
  | { readonly kind: "paused"; readonly child: ChildProcess; readonly pid: number; readonly exited: Promise<void> }
  /**
   * Exited on its own: a crash or a node that could not start (a finding), unless the cluster expected
   * that exit (a removed member's code 7, a wiped member's refusal, code 6; see ChaosCluster).
   */
  | { readonly kind: "crashed"; readonly code: number | null; readonly signal: string | null };

export interface NodeProcessOptions {
  readonly id: number;
  /** The executable and its leading arguments, e.g. [node, bin/raftkv.js, serve]. */
  readonly command: readonly string[];
  /** The flags of `serve` (setArgs changes them for the next start). */
  readonly args: readonly string[];
  /** The environment of the process (default: the harness's). */
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd: string;
  readonly logPath: string;
  readonly reaper: Reaper;
  /** Called when the process exits without being told to (a crash). */
  readonly onCrash: (id: number, code: number | null, signal: string | null) => void;
}

/** How long a SIGKILLed process may take to be reaped before that counts as a harness failure. */
const killWaitMsMax = 10_000;
/** Log bytes shown when a node crashed. */
export const logTailBytes = 4096;

export class NodeProcess {
  private lifecycle: NodeLifecycle = { kind: "down", why: "not-started" };
  private args: readonly string[];
  /** Where the last start's output begins in the log file (every start appends to it). */
  private logStart = 0;

  constructor(private readonly o: NodeProcessOptions) {
    assert(o.command.length >= 1, "node process: empty command");
    this.args = o.args;
  }

  /** The flags of `serve` for the next start (a member that rejoins with --join, say). */
  setArgs(args: readonly string[]): void {
    this.args = args;
  }

  get currentArgs(): readonly string[] {
    return this.args;
  }

  get id(): number {
    return this.o.id;
  }

  get state(): NodeLifecycle["kind"] {
    return this.lifecycle.kind;
  }

  get pid(): number | undefined {
    return this.lifecycle.kind === "running" || this.lifecycle.kind === "paused" ? this.lifecycle.pid : undefined;
  }

  start(): void {
    assert(
      this.lifecycle.kind === "down" || this.lifecycle.kind === "crashed",
      () => `node ${this.id}: start while ${this.lifecycle.kind}`,
    );
    const [executable, ...leading] = this.o.command;
    assert(executable !== undefined, "node process: empty command");
    this.logStart = existsSync(this.o.logPath) ? statSync(this.o.logPath).size : 0;
    const log = openSync(this.o.logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(executable, [...leading, ...this.args], {
        cwd: this.o.cwd,
        stdio: ["ignore", log, log],
        env: this.o.env ?? process.env,
      });
    } finally {
      closeSync(log);
    }
    const pid = child.pid;
    if (pid === undefined) {
      this.lifecycle = { kind: "crashed", code: null, signal: null };
      this.o.onCrash(this.id, null, null);
      return;
    }
    this.o.reaper.add(pid);
    const exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        this.o.reaper.remove(pid);
        const current = this.lifecycle;
        if ((current.kind === "running" || current.kind === "paused") && current.pid === pid) {
          this.lifecycle = { kind: "crashed", code, signal };
          this.o.onCrash(this.id, code, signal);
        }
        resolve();
      });
    });
    child.once("error", () => undefined);
    this.lifecycle = { kind: "running", child, pid, exited };
  }

  /** kill -9; resolves once the process is gone. */
  async kill(): Promise<void> {
    await this.signalAndWait("killed");
  }

  /** Ends the process for good at the end of a run (SIGKILL: the run is over, nothing to drain). */
  async stop(): Promise<void> {
    await this.signalAndWait("stopped");
  }

  pause(): void {
    const current = this.lifecycle;
    if (current.kind !== "running") return;
    process.kill(current.pid, "SIGSTOP");
    this.lifecycle = { ...current, kind: "paused" };
  }

  resume(): void {
    const current = this.lifecycle;
    if (current.kind !== "paused") return;
    process.kill(current.pid, "SIGCONT");
    this.lifecycle = { ...current, kind: "running" };
  }

  /** Synchronous last resort for process exit handlers. */
  killNow(): void {
    const current = this.lifecycle;
    if (current.kind !== "running" && current.kind !== "paused") return;
    try {
      process.kill(current.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    this.lifecycle = { kind: "down", why: "stopped" };
  }

  private async signalAndWait(why: "killed" | "stopped"): Promise<void> {
    const current = this.lifecycle;
    if (current.kind !== "running" && current.kind !== "paused") {
      if (current.kind === "down" && current.why === "not-started") return;
      this.lifecycle = current.kind === "crashed" ? current : { kind: "down", why };
      return;
    }
    this.lifecycle = { kind: "down", why };
    try {
      process.kill(current.pid, "SIGKILL");
    } catch {
      // It exited in the meantime; the exit event resolves `exited`.
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      current.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), killWaitMsMax);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) throw new Error(`node ${this.id} (pid ${current.pid}) did not exit within ${killWaitMsMax} ms of SIGKILL`);
  }

  /**
   * The end of what the last start wrote to the node's log, for a crash report (and for telling one
   * start's refusal from an earlier one's: the log file holds every start).
   */
  logTail(bytes = logTailBytes): string {
    return readTail(this.o.logPath, bytes, this.logStart);
  }
}

/** The last `bytes` of a file, from `from` on. */
export function readTail(path: string, bytes: number, from = 0): string {
  if (!existsSync(path)) return "";
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const length = Math.max(0, Math.min(size - from, bytes));
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    return buffer.toString("utf8");
  } finally {
    closeSync(fd);
  }
}

/**
 * The command that runs `raftkv serve` from this checkout: the built-in launcher once it exists
 * (bin/raftkv.js), else the TypeScript entry point through tsx. `undefined` when neither exists yet.
 */
export function defaultServeCommand(repoRoot: string): string[] | undefined {
  if (existsSync(join(repoRoot, "bin", "raftkv.js"))) return [process.execPath, join(repoRoot, "bin", "raftkv.js"), "serve"];
  if (existsSync(join(repoRoot, "src", "cli", "main.ts")))
    return [process.execPath, "--import", "tsx", join(repoRoot, "src", "cli", "main.ts"), "serve"];
  return undefined;
}
