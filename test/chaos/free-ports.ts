import * as net from "node:net";
import { assert } from "../../src/lib/assert.js";

/** Most ports one call may reserve; a cluster of 9 nodes needs 18. */
const portsMax = 64;

/**
 * Free loopback ports for servers that must be told their port before they start (a raftkv node's
 * peer and client URLs are in every node's --initial-cluster). All are held open together, so the
 * same port is never handed out twice, then released. Another process may still take one in the
 * moment before the node binds it; the cluster notices (the node exits) and reports it.
 */
export async function freePorts(count: number, host = "127.0.0.1"): Promise<number[]> {
  assert(Number.isSafeInteger(count) && count >= 1 && count <= portsMax, () => `freePorts: count must be 1..${portsMax}, got ${count}`);
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const server = net.createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, host, () => resolve());
      });
    }
    return servers.map((server) => {
      const address = server.address();
      assert(address !== null && typeof address === "object", "freePorts: a listening server has an address");
      return address.port;
    });
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()))));
  }
}
