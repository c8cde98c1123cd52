import * as net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createTcpProxy, linkHealthy, type TcpProxy } from "./tcp-proxy.js";

/**
 * The link proxy over real loopback sockets: an upstream server that echoes, and clients that check
 * what arrives, when, and whether their socket stays open (drop, stall) or is reset.
 */
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function echoServer(): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  closers.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const address = server.address() as net.AddressInfo;
  return { port: address.port, connections: () => connections };
}

async function proxyTo(port: number): Promise<TcpProxy> {
  const proxy = await createTcpProxy({ name: "1->2", targetHost: "127.0.0.1", targetPort: port });
  closers.push(() => proxy.close());
  return proxy;
}

interface Client {
  readonly socket: net.Socket;
  received(): string;
  readonly closed: Promise<string>;
}

async function connect(port: number): Promise<Client> {
  const socket = net.connect({ host: "127.0.0.1", port });
  let data = "";
  socket.on("data", (chunk: Buffer) => (data += chunk.toString()));
  const closed = new Promise<string>((resolve) => {
    socket.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    socket.on("close", () => resolve("closed"));
  });
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  closers.push(async () => void socket.destroy());
  return { socket, received: () => data, closed };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await sleep(5);
  }
}

describe("tcp proxy", () => {
  it("forwards both ways when healthy", async () => {
    const upstream = await echoServer();
    const proxy = await proxyTo(upstream.port);
    const client = await connect(proxy.port);
    client.socket.write("hello");
    await until(() => client.received() === "hello");
    expect(proxy.stats().bytesForwarded).toBe(10);
    expect(proxy.url).toBe(`http://127.0.0.1:${proxy.port}`);
  });

  it("adds latency in each direction and keeps the byte order", async () => {
    const upstream = await echoServer();
    const proxy = await proxyTo(upstream.port);
    proxy.set({ mode: "pass", delayMs: 100 });
    const client = await connect(proxy.port);
    const sent = Date.now();
    for (const part of ["a", "b", "c"]) client.socket.write(part);
    await until(() => client.received() === "abc");
    // Out and back: at least two delays.
    expect(Date.now() - sent).toBeGreaterThanOrEqual(190);
  });

  it("drops silently: the socket stays open, nothing arrives, and a connection that lost bytes is reset on heal", async () => {
    const upstream = await echoServer();
    const proxy = await proxyTo(upstream.port);
    const client = await connect(proxy.port);
    client.socket.write("before");
    await until(() => client.received() === "before");
    proxy.set({ mode: "drop", delayMs: 0 });
    client.socket.write("lost");
    await sleep(150);
    expect(client.received()).toBe("before");
    expect(client.socket.destroyed).toBe(false);
    expect(proxy.stats().bytesDropped).toBe(4);
    proxy.set(linkHealthy);
    expect(await client.closed).toBe("ECONNRESET");
    expect(proxy.stats().connectionsReset).toBe(1);
  });

  it("keeps a connection that lost nothing through a drop, and accepts but holds new connections during one", async () => {
    const upstream = await echoServer();
    const proxy = await proxyTo(upstream.port);
    const idle = await connect(proxy.port);
    await until(() => upstream.connections() === 1);
    proxy.set({ mode: "drop", delayMs: 0 });
    const held = await connect(proxy.port);
    held.socket.write("syn lost");
    await sleep(100);
    // The held connection never reached the target.
    expect(upstream.connections()).toBe(1);
    proxy.set(linkHealthy);
    expect(await held.closed).toBe("ECONNRESET");
    idle.socket.write("still here");
    await until(() => idle.received() === "still here");
  });

  it("stalls: bytes are held while the socket stays open, then delivered in order on heal", async () => {
    const upstream = await echoServer();
    const proxy = await proxyTo(upstream.port);
    const client = await connect(proxy.port);
    proxy.set({ mode: "stall", delayMs: 0 });
    client.socket.write("late-");
    client.socket.write("but-whole");
    await sleep(150);
    expect(client.received()).toBe("");
    proxy.set(linkHealthy);
    await until(() => client.received() === "late-but-whole");
  });

  it("resets open connections and refuses new ones in reset mode", async () => {
    const upstream = await echoServer();
    const proxy = await proxyTo(upstream.port);
    const client = await connect(proxy.port);
    proxy.set({ mode: "reset", delayMs: 0 });
    expect(await client.closed).toBe("ECONNRESET");
    const refused = net.connect({ host: "127.0.0.1", port: proxy.port });
    const outcome = await new Promise<string>((resolve) => {
      refused.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
      refused.on("close", () => resolve("closed"));
    });
    expect(["ECONNRESET", "closed"]).toContain(outcome);
    proxy.set(linkHealthy);
    const again = await connect(proxy.port);
    again.socket.write("back");
    await until(() => again.received() === "back");
  });

  it("refuses non-loopback addresses and out-of-range latency", async () => {
    await expect(createTcpProxy({ name: "x", targetHost: "10.0.0.1", targetPort: 1 })).rejects.toThrow(/not loopback/);
    await expect(createTcpProxy({ name: "x", targetHost: "127.0.0.1", targetPort: 1, listenHost: "0.0.0.0" })).rejects.toThrow(
      /not loopback/,
    );
    const upstream = await echoServer();
    const proxy = await proxyTo(upstream.port);
    expect(() => proxy.set({ mode: "pass", delayMs: 60_000 })).toThrow(/delayMs/);
  });
});
