// Loaded into every raftkv process of a chaos run (NODE_OPTIONS=--import=<this file>, see cluster.ts): the
// per-process routing table of the harness's link proxies, the loopback equivalent of the per-host
// iptables DNAT rules a Jepsen test lays on real machines.
//
// Every member's peer URL is its real one, in --initial-cluster and in the member records the Raft log
// replicates, as in a real deployment. This module redirects this process's outgoing TCP connections to
// another node's real peer address to the proxy of the directed link (this node -> that node), so the
// nemesis controls each direction of each pair whatever URL a node learned from the log: a membership
// change replicates every member's URL cluster-wide, and per-link proxy URLs in the flags would no longer
// hold after the first change.
//
// RAFTKV_CHAOS_PEER_ROUTES is "host:port=host:port,..." (real peer address = proxy address). Connections
// to any other address (client URLs, the join client) are untouched. The module writes one line to
// stderr, which the harness looks for in the node's log to know that its routes are in force (a serve
// command that is not a Node process would bypass the proxies).
import net from "node:net";
import { syncBuiltinESMExports } from "node:module";

const routes = new Map();
for (const pair of (process.env.RAFTKV_CHAOS_PEER_ROUTES ?? "").split(",")) {
  const [from, to] = pair.split("=");
  if (from === undefined || to === undefined || from === "" || to === "") continue;
  const colon = to.lastIndexOf(":");
  routes.set(from, { host: to.slice(0, colon), port: Number(to.slice(colon + 1)) });
}

function routed(host, port) {
  const name = host === undefined || host === "localhost" ? "127.0.0.1" : host;
  return routes.get(`${name}:${Number(port)}`);
}

const originalConnect = net.connect;

/** net.connect / net.createConnection with the destination rewritten when it is a routed peer address. */
function connect(...args) {
  const [first, second] = args;
  if (typeof first === "object" && first !== null && !Array.isArray(first) && first.port !== undefined && first.path === undefined) {
    const to = routed(first.host, first.port);
    if (to !== undefined) args[0] = { ...first, host: to.host, port: to.port };
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    const to = routed(typeof second === "string" ? second : undefined, first);
    if (to !== undefined) {
      args[0] = to.port;
      if (typeof second === "string") args[1] = to.host;
      else args.splice(1, 0, to.host);
    }
  }
  return originalConnect.apply(this, args);
}

if (routes.size > 0) {
  net.connect = connect;
  net.createConnection = connect;
  syncBuiltinESMExports();
}
process.stderr.write(`raftkv-chaos: peer routes in force in pid ${process.pid}: ${routes.size} links through the harness's proxies\n`);
