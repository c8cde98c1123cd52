import { readFileSync } from "node:fs";
import * as net from "node:net";
import { assert } from "../../src/lib/assert.js";

/** Most ports one call may reserve; a cluster of 9 nodes needs 18. */
const portsMax = 64;
/** The lowest port handed out: above the well-known and most registered service ports. */
const portFloor = 10_000;
/** Bind attempts per port asked for before giving up. */
const attemptsPerPort = 50;

/**
 * Free loopback ports for servers that must be told their port before they start (a raftkv node's
 * peer and client URLs are in every node's --initial-cluster). All are held open together, so the
 * same port is never handed out twice, then released. Another process may still take one in the
 * moment before the node binds it; the cluster notices (the node exits) and reports it.
 *
 * The ports come from below the kernel's ephemeral range, never from it (`listen(0)` would pick one
 * there): a node killed with -9 is restarted on the same ports, and while it is down the kernel may
 * give its port to any outgoing connection (a proxy's, a client's) as the local port. A chaos run saw
 * exactly that: the restarted node failed with EADDRINUSE (seed 17 of a 50-run batch).
 */
export async function freePorts(count: number, host = "127.0.0.1"): Promise<number[]> {
  assert(Number.isSafeInteger(count) && count >= 1 && count <= portsMax, () => `freePorts: count must be 1..${portsMax}, got ${count}`);
  const ceiling = ephemeralRangeStart() - 1;
  assert(ceiling - portFloor >= 1_000, () => `freePorts: too few ports below the ephemeral range (starts at ${ceiling + 1})`);
  const servers: net.Server[] = [];
  const ports = new Set<number>();
  try {
    for (let attempt = 0; attempt < count * attemptsPerPort && servers.length < count; attempt++) {
      const port = portFloor + Math.floor(Math.random() * (ceiling - portFloor + 1));
      if (ports.has(port)) continue;
      const server = net.createServer();
      const bound = await new Promise<boolean>((resolve) => {
        server.once("error", () => resolve(false));
        server.listen(port, host, () => resolve(true));
      });
      if (!bound) continue;
      servers.push(server);
      ports.add(port);
    }
    assert(servers.length === count, () => `freePorts: found ${servers.length} of ${count} free ports in ${portFloor}..${ceiling}`);
    return [...ports];
  } finally {
    await Promise.all(
      servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))),
    );
  }
}

/** The first port of the kernel's ephemeral range (Linux; the IANA default 49152 elsewhere). */
function ephemeralRangeStart(): number {
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    return Number.isSafeInteger(first) && first > portFloor ? first : 49_152;
  } catch {
    return 49_152;
  }
}
