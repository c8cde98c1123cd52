import { spawn, type ChildProcess } from "node:child_process";
import type { Socket } from "node:net";

/**
 * Kills the servers a chaos run started if the run itself dies without cleaning up (SIGKILL, an OOM,
 * a test runner tearing down its worker). The harness kills its children on every normal path; this
 * is the backstop so that no stray raftkv survives.
 *
 * The reaper is a tiny detached node process (own process group, so a Ctrl-C to the harness's group
 * does not take it first) that reads "add PID" / "del PID" lines on stdin. When stdin closes, which
 * the kernel does when the harness exits for any reason, it SIGKILLs every PID still registered.
 * SIGKILL also ends a SIGSTOPped process.
 */
const reaperSource = `
const pids = new Set();
let pending = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  pending += chunk;
  for (let i = pending.indexOf("\\n"); i >= 0; i = pending.indexOf("\\n")) {
    const [op, text] = pending.slice(0, i).split(" ");
    pending = pending.slice(i + 1);
    const pid = Number(text);
    if (!Number.isSafeInteger(pid) || pid <= 1) continue;
    if (op === "add") pids.add(pid);
    if (op === "del") pids.delete(pid);
  }
});
process.stdin.on("end", () => {
  for (const pid of pids) {
    try { process.kill(pid, "SIGKILL"); } catch {}
  }
  process.exit(0);
});
process.on("SIGINT", () => {});
process.on("SIGTERM", () => {});
`;

export interface Reaper {
  add(pid: number): void;
  remove(pid: number): void;
  /** Ends the reaper; it kills whatever is still registered. */
  close(): void;
}

export function startReaper(): Reaper {
  const child: ChildProcess = spawn(process.execPath, ["-e", reaperSource], { detached: true, stdio: ["pipe", "ignore", "ignore"] });
  child.unref();
  const stdin = child.stdin;
  // The pipe must not keep the harness alive, and a reaper that died must not crash the harness.
  stdin?.on("error", () => undefined);
  (stdin as Socket | null)?.unref();
  const write = (line: string): void => {
    if (stdin !== null && stdin.writable) stdin.write(`${line}\n`);
  };
  return {
    add: (pid) => write(`add ${pid}`),
    remove: (pid) => write(`del ${pid}`),
    close: () => stdin?.end(),
  };
}
