import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { accessSync, closeSync, constants, existsSync, openSync, readdirSync, readFileSync } from "node:fs";
import * as net from "node:net";
import { delimiter, join } from "node:path";
// Read-only reuse of the chaos harness's backstop: a detached process that SIGKILLs our servers if
// this process dies without cleaning up (kill -9, OOM), which no exit handler can cover.
import { readTail } from "../../test/chaos/node-process.js";
import { startReaper, type Reaper } from "../../test/chaos/reaper.js";

/**
 * The server processes the benchmark starts: 3 `raftkv serve` and, with --compare etcd, 3 etcd, on
 * fixed loopback ports, logs in files, all killed on every way out.
 */

export interface ServerSpec {
  readonly name: string;
  readonly command: readonly string[];
  readonly logPath: string;
  readonly env?: NodeJS.ProcessEnv;
}

interface Running {
  readonly spec: ServerSpec;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<void>;
}

export class ServerProcesses {
  private readonly running = new Map<string, Running>();
  private readonly reaper: Reaper = startReaper();
  private stopping = false;
  /** Set when a server exited on its own: the run is over (its log tail is in the message). */
  crash: Error | undefined;

  constructor(private readonly cwd: string) {}

  start(spec: ServerSpec): void {
    const log = openSync(spec.logPath, "a");
    let child: ChildProcess;
    try {
      // detached: a process group of its own, so the terminal's Ctrl-C reaches only the benchmark,
      // which then stops every server itself.
      const [executable, ...args] = spec.command;
      if (executable === undefined) throw new Error(`${spec.name}: empty command`);
      child = spawn(executable, args, { cwd: this.cwd, stdio: ["ignore", log, log], detached: true, env: spec.env ?? process.env });
    } finally {
      closeSync(log);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`${spec.name}: could not start ${spec.command.join(" ")}`);
    this.reaper.add(pid);
    child.once("error", () => undefined);
    const exited = new Promise<void>((resolve) =>
      child.once("exit", (code, signal) => {
        this.running.delete(spec.name);
        this.reaper.remove(pid);
        if (!this.stopping && this.crash === undefined) {
          this.crash = new Error(
            `${spec.name} (pid ${pid}) exited on its own (${signal ?? `code ${code}`}); end of ${spec.logPath}:\n${readTail(spec.logPath, 2_000)}`,
          );
        }
        resolve();
      }),
    );
    this.running.set(spec.name, { spec, child, pid, exited });
  }

  /** Root pids of the servers whose name starts with `prefix` ("raftkv-", "etcd-"). */
  pids(prefix: string): number[] {
    return [...this.running.values()].filter((r) => r.spec.name.startsWith(prefix)).map((r) => r.pid);
  }

  /**
   * SIGKILL, not SIGTERM: the run is over and its data is thrown away, so there is nothing to hand off
   * or drain, and three raftkv leaders-to-be handing off to each other while all stop only takes time.
   */
  async stopAll(): Promise<void> {
    this.stopping = true;
    const all = [...this.running.values()];
    for (const r of all) killQuietly(r.pid);
    await Promise.race([Promise.all(all.map((r) => r.exited)), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    this.reaper.close();
  }

  /** For process "exit" handlers: synchronous, no waiting. */
  killNow(): void {
    this.stopping = true;
    for (const r of this.running.values()) killQuietly(r.pid);
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // Already gone.
  }
}

const clockTicksPerSecond = ((): number => {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
})();

/** pid and every descendant (a launcher may run the real server as its child), from /proc. */
function processTree(root: number): number[] {
  const tree: number[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    tree.push(pid);
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim();
        if (children !== "") queue.push(...children.split(/\s+/).map(Number));
      } catch {
        // The thread ended meanwhile.
      }
    }
  }
  return tree;
}

/** utime and stime of one process (all its threads), in ms; 0 when it is gone. */
function processCpuMs(pid: number): { user: number; system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may contain spaces: state is field 3,
    // utime field 14, stime field 15 (proc(5)).
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: (Number(fields[11]) * 1000) / clockTicksPerSecond, system: (Number(fields[12]) * 1000) / clockTicksPerSecond };
  } catch {
    return { user: 0, system: 0 };
  }
}

export interface CpuSample {
  readonly userMs: number;
  readonly systemMs: number;
  /** user + system of each root's tree, in the order of the roots. */
  readonly perRootMs: readonly number[];
}

/** CPU used so far by the process trees of `roots`, or undefined where /proc is not available. */
export function treeCpu(roots: readonly number[]): CpuSample | undefined {
  if (roots.length === 0 || !existsSync("/proc/self/stat")) return undefined;
  let userMs = 0;
  let systemMs = 0;
  const perRootMs = roots.map((root) => {
    let total = 0;
    for (const pid of processTree(root)) {
      const { user, system } = processCpuMs(pid);
      userMs += user;
      systemMs += system;
      total += user + system;
    }
    return total;
  });
  return { userMs, systemMs, perRootMs };
}

/** Throws naming the first port of `ports` that something on 127.0.0.1 already uses. */
export async function checkPortsFree(ports: readonly number[], hint: string): Promise<void> {
  for (const port of ports) {
    const server = net.createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (free) await new Promise((resolve) => server.close(resolve));
    else throw new Error(`port ${port} on 127.0.0.1 is in use; ${hint}`);
  }
}

/** The path of an executable on PATH, or undefined. */
export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}
