import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readTail } from "../chaos/node-process.js";
import type { Reaper } from "../chaos/reaper.js";

/**
 * One emulated container: a `raftkv serve` process started with exactly the environment a pod would
 * get (nothing inherited from the test but PATH), its output appended to a log file that survives
 * restarts, like `kubectl logs --previous`. The reaper kills it if the test worker dies.
 */
export interface PodProcessOptions {
  readonly name: string;
  /** The executable and its arguments (the image's entrypoint followed by the container's args). */
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly logPath: string;
  readonly reaper: Reaper;
}

export interface PodExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class PodProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<PodExit> | undefined;

  constructor(readonly o: PodProcessOptions) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  start(): void {
    if (this.child !== undefined) throw new Error(`${this.o.name} is already running`);
    const [executable, ...args] = this.o.command;
    if (executable === undefined) throw new Error("empty command");
    const log = openSync(this.o.logPath, "a");
    let child: ChildProcess;
    try {
      child = spawn(executable, args, {
        cwd: this.o.cwd,
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...this.o.env },
        stdio: ["ignore", log, log],
      });
    } finally {
      closeSync(log);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${this.o.name}: could not start ${executable}`);
    this.o.reaper.add(pid);
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.o.reaper.remove(pid);
        if (this.child === child) this.child = undefined;
        resolve({ code, signal });
      });
    });
  }

  /**
   * What the kubelet does to stop a container: SIGTERM, then SIGKILL after the grace period. Resolves
   * with how the process ended.
   */
  async terminate(gracePeriodMs: number): Promise<PodExit> {
    const child = this.child;
    const exited = this.exited;
    if (child === undefined || exited === undefined) throw new Error(`${this.o.name} is not running`);
    child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<"grace-over">((resolve) => (timer = setTimeout(() => resolve("grace-over"), gracePeriodMs)));
    const outcome = await Promise.race([exited, graceOver]);
    clearTimeout(timer);
    if (outcome !== "grace-over") return outcome;
    child.kill("SIGKILL");
    return exited;
  }

  /**
   * How the latest run ends (or ended), without signalling it: for a container that exits by itself.
   */
  async exit(): Promise<PodExit> {
    if (this.exited === undefined) throw new Error(`${this.o.name} never started`);
    return this.exited;
  }

  /** kill -9, as when a node dies or `kubectl delete pod --grace-period=0 --force`. */
  async kill(): Promise<PodExit> {
    const child = this.child;
    const exited = this.exited;
    if (child === undefined || exited === undefined) throw new Error(`${this.o.name} is not running`);
    child.kill("SIGKILL");
    return exited;
  }

  /** For exit handlers: SIGKILL without waiting. */
  killNow(): void {
    this.child?.kill("SIGKILL");
  }

  logTail(bytes = 3000): string {
    return readTail(this.o.logPath, bytes);
  }
}

/** True when GET `url` answers 200 within a second (a kubelet HTTP probe counts 200-399 as success). */
export async function probeOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    await response.body?.cancel();
    return response.status >= 200 && response.status < 400;
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` until it is true; throws naming `what` (and `context()`) after `timeoutMs`. */
export async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  context: () => string = () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${context()}`);
    await sleep(100);
  }
}
