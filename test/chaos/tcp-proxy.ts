import * as net from "node:net";
import { assert } from "../../src/lib/assert.js";

/**
 * A TCP proxy for one directed peer link (node A dialling node B's peer port), which the chaos nemesis
 * controls. Raft messages from A to B travel over A's own connection to B, so this proxy carries
 * everything A says to B (and B's answers to those calls); B's messages to A take a different proxy.
 *
 * Modes, chosen to look like real networks rather than like a process that died:
 * - `pass`: bytes flow, optionally after `delayMs` (order kept per direction).
 * - `drop`: packets vanish. Sockets stay open and bytes are read and discarded, so an open HTTP/2
 *   session stalls rather than failing (only its PING timeout can notice). New connections are
 *   accepted but never reach B, like a SYN lost in a partition. A connection that lost bytes has a hole
 *   in its byte stream, so when the link heals it is reset, as TCP would after its retransmissions
 *   timed out; connections that lost nothing carry on.
 * - `stall`: packets are delayed without bound (a long retransmission back-off): bytes are held, up to
 *   `heldBytesMax` per direction, then the sender is back-pressured like a full TCP window. On heal the
 *   held bytes are delivered late, in order, which is how stale Raft messages arrive after a partition.
 * - `reset`: the link refuses: open connections get an RST and new ones are reset at once.
 */
export type LinkMode = "pass" | "drop" | "stall" | "reset";

export interface LinkState {
  readonly mode: LinkMode;
  /** Added one-way latency, applied to each direction of the connection; 0 for none. */
  readonly delayMs: number;
}

export const linkHealthy: LinkState = { mode: "pass", delayMs: 0 };

export interface TcpProxyOptions {
  /** For logs and stats, e.g. "1->2". */
  readonly name: string;
  readonly targetHost: string;
  readonly targetPort: number;
  /** Where to listen; a loopback address. Port 0 (the default) picks a free port. */
  readonly listenHost?: string;
  readonly listenPort?: number;
  /** Connections open at once; more are closed on accept. Default 64. */
  readonly connectionsMax?: number;
  /** Bytes queued per direction (delayed or stalled) before the sender is paused. Default 8 MiB. */
  readonly heldBytesMax?: number;
  /** Longest latency that may be set, so a typo cannot hold a link for hours. Default 10 s. */
  readonly delayMsMax?: number;
}

export interface TcpProxyStats {
  readonly name: string;
  readonly mode: LinkMode;
  readonly delayMs: number;
  readonly connectionsAccepted: number;
  readonly connectionsOpen: number;
  /** Connections the proxy reset: in `reset` mode, or on heal after losing bytes in `drop` mode. */
  readonly connectionsReset: number;
  readonly bytesForwarded: number;
  readonly bytesDropped: number;
}

export interface TcpProxy {
  readonly name: string;
  readonly port: number;
  /** http://host:port of the listener, for a peer URL. */
  readonly url: string;
  readonly state: LinkState;
  set(state: LinkState): void;
  stats(): TcpProxyStats;
  /** Closes the listener and destroys every connection. */
  close(): Promise<void>;
}

const CONNECTIONS_MAX_DEFAULT = 64;
const HELD_BYTES_MAX_DEFAULT = 8 * 1024 * 1024;
const DELAY_MS_MAX_DEFAULT = 10_000;

export function isLoopbackHost(host: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === "::1" || host === "localhost";
}

export async function createTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const listenHost = options.listenHost ?? "127.0.0.1";
  // The chaos suite must never touch a real network: both ends are on loopback.
  if (!isLoopbackHost(listenHost)) throw new RangeError(`tcp proxy ${options.name}: listen host ${listenHost} is not loopback`);
  if (!isLoopbackHost(options.targetHost))
    throw new RangeError(`tcp proxy ${options.name}: target host ${options.targetHost} is not loopback`);
  const proxy = new Proxy(options, listenHost);
  await proxy.listen(options.listenPort ?? 0);
  return proxy;
}

/** One direction of a proxied connection: bytes read from `from`, queued, written to `to`. */
class Pipe {
  private readonly queue: { data: Buffer; dueAt: number }[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private fromEnded = false;
  private paused = false;

  private to: net.Socket | undefined;

  constructor(
    private readonly conn: Connection,
    private readonly from: net.Socket,
  ) {
    from.on("data", (data: Buffer) => this.onData(data));
    from.on("end", () => {
      this.fromEnded = true;
      this.pump();
    });
  }

  attach(to: net.Socket): void {
    this.to = to;
    to.on("drain", () => this.pump());
    this.pump();
  }

  private onData(data: Buffer): void {
    const state = this.conn.proxy.state;
    if (state.mode === "drop" || state.mode === "reset" || this.conn.lifecycle.kind === "held") {
      this.conn.proxy.counts.bytesDropped += data.length;
      this.conn.tainted = true;
      return;
    }
    const dueAt = state.mode === "stall" ? Number.POSITIVE_INFINITY : Date.now() + state.delayMs;
    this.queue.push({ data, dueAt });
    this.queuedBytes += data.length;
    if (this.queuedBytes > this.conn.proxy.heldBytesMax && !this.paused) {
      this.paused = true;
      this.from.pause();
    }
    this.pump();
  }

  /** The link changed: held bytes become due (heal), or everything queued vanishes (drop). */
  onLinkChange(state: LinkState): void {
    if (state.mode === "drop" || state.mode === "reset") {
      if (this.queuedBytes > 0) this.conn.tainted = true;
      this.conn.proxy.counts.bytesDropped += this.queuedBytes;
      this.queue.length = 0;
      this.queuedBytes = 0;
      this.resumeIfBelow();
    } else if (state.mode === "pass") {
      const now = Date.now();
      for (const chunk of this.queue) if (chunk.dueAt === Number.POSITIVE_INFINITY) chunk.dueAt = now + state.delayMs;
    }
    this.pump();
  }

  private pump(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const to = this.to;
    if (to === undefined || to.destroyed) return;
    const now = Date.now();
    while (this.queue.length > 0) {
      const head = this.queue[0];
      assert(head !== undefined, "tcp proxy: a non-empty queue has a head");
      if (head.dueAt > now) {
        if (head.dueAt !== Number.POSITIVE_INFINITY) this.timer = setTimeout(() => this.pump(), head.dueAt - now);
        return;
      }
      if (to.writableNeedDrain) return;
      this.queue.shift();
      this.queuedBytes -= head.data.length;
      this.conn.proxy.counts.bytesForwarded += head.data.length;
      to.write(head.data);
      this.resumeIfBelow();
    }
    if (this.fromEnded && !to.writableEnded) to.end();
  }

  private resumeIfBelow(): void {
    if (this.paused && this.queuedBytes <= this.conn.proxy.heldBytesMax / 2) {
      this.paused = false;
      this.from.resume();
    }
  }

  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }
}

/**
 * A proxied connection. `held`: accepted while the link dropped everything, so it never reached the
 * target (a lost SYN); `open`: connected (or connecting) to the target; `closed`: both sockets gone.
 */
type ConnectionLifecycle =
  { readonly kind: "held" } | { readonly kind: "open"; readonly upstream: net.Socket } | { readonly kind: "closed" };

class Connection {
  lifecycle: ConnectionLifecycle;
  /** Bytes were discarded: the byte stream has a hole, so the connection cannot carry on after a heal. */
  tainted = false;
  private readonly toTarget: Pipe;
  private toClient: Pipe | undefined;

  constructor(
    readonly proxy: Proxy,
    private readonly downstream: net.Socket,
  ) {
    downstream.on("error", () => this.destroy(false));
    downstream.on("close", () => this.destroy(false));
    this.toTarget = new Pipe(this, downstream);
    this.lifecycle = { kind: "held" };
    if (proxy.state.mode !== "drop") this.connect();
  }

  private connect(): void {
    const upstream = net.connect({ host: this.proxy.options.targetHost, port: this.proxy.options.targetPort });
    upstream.setNoDelay(true);
    upstream.on("error", () => this.destroy(false));
    upstream.on("close", () => this.destroy(false));
    this.lifecycle = { kind: "open", upstream };
    this.toClient = new Pipe(this, upstream);
    this.toClient.attach(this.downstream);
    this.toTarget.attach(upstream);
  }

  onLinkChange(state: LinkState): void {
    if (this.lifecycle.kind === "closed") return;
    if (state.mode === "reset") return this.destroy(true);
    // A held connection never reached the target; the client will dial again. A tainted one lost bytes.
    if (state.mode !== "drop" && (this.lifecycle.kind === "held" || this.tainted)) return this.destroy(true);
    this.toTarget.onLinkChange(state);
    this.toClient?.onLinkChange(state);
  }

  destroy(reset: boolean): void {
    if (this.lifecycle.kind === "closed") return;
    const upstream = this.lifecycle.kind === "open" ? this.lifecycle.upstream : undefined;
    this.lifecycle = { kind: "closed" };
    this.toTarget.stop();
    this.toClient?.stop();
    if (reset) {
      this.proxy.counts.connectionsReset++;
      if (!this.downstream.destroyed) this.downstream.resetAndDestroy();
      if (upstream !== undefined && !upstream.destroyed && upstream.readyState === "open") upstream.resetAndDestroy();
      else upstream?.destroy();
    } else {
      this.downstream.destroy();
      upstream?.destroy();
    }
    this.proxy.connections.delete(this);
  }
}

class Proxy implements TcpProxy {
  readonly name: string;
  readonly heldBytesMax: number;
  private readonly connectionsMax: number;
  private readonly delayMsMax: number;
  private readonly server: net.Server;
  readonly connections = new Set<Connection>();
  readonly counts = { connectionsAccepted: 0, connectionsReset: 0, bytesForwarded: 0, bytesDropped: 0 };
  state: LinkState = linkHealthy;
  port = 0;

  constructor(
    readonly options: TcpProxyOptions,
    private readonly host: string,
  ) {
    this.name = options.name;
    this.heldBytesMax = options.heldBytesMax ?? HELD_BYTES_MAX_DEFAULT;
    this.connectionsMax = options.connectionsMax ?? CONNECTIONS_MAX_DEFAULT;
    this.delayMsMax = options.delayMsMax ?? DELAY_MS_MAX_DEFAULT;
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, this.host, () => {
        this.server.off("error", reject);
        const address = this.server.address();
        assert(address !== null && typeof address === "object", "tcp proxy: a listening server has an address");
        this.port = address.port;
        resolve();
      });
    });
  }

  private accept(socket: net.Socket): void {
    this.counts.connectionsAccepted++;
    socket.on("error", () => socket.destroy());
    if (this.state.mode === "reset") {
      this.counts.connectionsReset++;
      socket.resetAndDestroy();
      return;
    }
    if (this.connections.size >= this.connectionsMax) {
      socket.destroy();
      return;
    }
    this.connections.add(new Connection(this, socket));
  }

  set(state: LinkState): void {
    if (!Number.isSafeInteger(state.delayMs) || state.delayMs < 0 || state.delayMs > this.delayMsMax) {
      throw new RangeError(`tcp proxy ${this.name}: delayMs must be an integer in [0, ${this.delayMsMax}], got ${state.delayMs}`);
    }
    this.state = state;
    for (const conn of [...this.connections]) conn.onLinkChange(state);
  }

  stats(): TcpProxyStats {
    return { name: this.name, mode: this.state.mode, delayMs: this.state.delayMs, connectionsOpen: this.connections.size, ...this.counts };
  }

  close(): Promise<void> {
    for (const conn of [...this.connections]) conn.destroy(false);
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
