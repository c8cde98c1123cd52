import { Agent } from "node:http";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import { Http2SessionManager, createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { MaintenanceService, type BackupHeader } from "../../../gen/raftkv/v1/maintenance_pb.js";
import type { ClientProtocol } from "./raftkv-client.js";
import { normalizeEndpoint } from "./raftkv-client.js";

/** One part of a Snapshot stream, checked for order: a header, chunks, then the trailer. */
export type SnapshotPart =
  | { readonly kind: "header"; readonly header: BackupHeader }
  | { readonly kind: "chunk"; readonly bytes: Uint8Array }
  | { readonly kind: "trailer"; readonly totalBytes: number; readonly sha256: string };

export interface MaintenanceClientOptions {
  readonly endpoints: readonly string[];
  /** gRPC over HTTP/2 (default), Connect or gRPC-web over HTTP/1.1. */
  readonly protocol?: ClientProtocol;
}

/**
 * MaintenanceService on each endpoint. Unlike RaftkvClient it does not hide endpoints or retry: a
 * snapshot is a long stream whose bytes the caller writes somewhere as they come, so only the caller
 * knows when an attempt can start over (after it threw away what it wrote), and any member will do,
 * so there is no leader to follow.
 */
export interface MaintenanceClient {
  readonly endpoints: readonly string[];
  /**
   * Streams a consistent snapshot from `endpoint` (one of `endpoints`). Throws a ConnectError when the
   * call fails, or when the stream breaks the protocol (a part out of order, no trailer at the end):
   * the parts received until then must be discarded.
   */
  snapshot(endpoint: string, options: { readonly signal?: AbortSignal; readonly timeoutMs: number }): AsyncIterable<SnapshotPart>;
  close(): void;
}

export function createMaintenanceClient(options: MaintenanceClientOptions): MaintenanceClient {
  const protocol = options.protocol ?? "grpc";
  const endpoints = [...new Set(options.endpoints.map(normalizeEndpoint))];
  if (endpoints.length === 0) throw new RangeError("at least one endpoint is needed");
  const opened = new Map<string, { client: Client<typeof MaintenanceService>; close: () => void }>();
  const clientFor = (url: string): Client<typeof MaintenanceService> => {
    const existing = opened.get(url);
    if (existing !== undefined) return existing.client;
    const { transport, close } = openTransport(url, protocol);
    const client = createClient(MaintenanceService, transport);
    opened.set(url, { client, close });
    return client;
  };
  return {
    endpoints,
    async *snapshot(endpoint, callOptions) {
      const url = normalizeEndpoint(endpoint);
      const stream = clientFor(url).snapshot(
        {},
        { timeoutMs: callOptions.timeoutMs, ...(callOptions.signal === undefined ? {} : { signal: callOptions.signal }) },
      );
      let state: "header" | "chunks" | "done" = "header";
      for await (const message of stream) {
        const { kind } = message;
        if (state === "done") throw protocolError(url, "a message after the trailer");
        if (kind.case === "header" && state === "header") {
          state = "chunks";
          yield { kind: "header", header: kind.value };
        } else if (kind.case === "chunk" && state === "chunks") {
          yield { kind: "chunk", bytes: kind.value };
        } else if (kind.case === "trailer" && state === "chunks") {
          const totalBytes = Number(kind.value.totalBytes);
          if (!Number.isSafeInteger(totalBytes)) throw protocolError(url, `a total of ${kind.value.totalBytes} bytes`);
          state = "done";
          yield { kind: "trailer", totalBytes, sha256: Buffer.from(kind.value.sha256).toString("hex") };
        } else {
          throw protocolError(
            url,
            `a ${kind.case ?? "empty"} message where a ${state === "header" ? "header" : "chunk or the trailer"} belongs`,
          );
        }
      }
      if (state !== "done") throw protocolError(url, "the end of the stream before the trailer");
    },
    close() {
      for (const { close } of opened.values()) close();
      opened.clear();
    },
  };
}

function protocolError(url: string, what: string): ConnectError {
  return new ConnectError(`the snapshot stream from ${url} broke off or is malformed: ${what}`, Code.DataLoss);
}

/** The same transports RaftkvClient opens per endpoint (see raftkv-client.ts `open`). */
function openTransport(url: string, protocol: ClientProtocol): { transport: Transport; close: () => void } {
  if (protocol === "grpc") {
    const sessionManager = new Http2SessionManager(url, { pingIntervalMs: 10_000, pingTimeoutMs: 5_000, idleConnectionTimeoutMs: 60_000 });
    return { transport: createGrpcTransport({ baseUrl: url, sessionManager }), close: () => sessionManager.abort() };
  }
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  const create = protocol === "connect" ? createConnectTransport : createGrpcWebTransport;
  return { transport: create({ baseUrl: url, httpVersion: "1.1", nodeOptions: { agent } }), close: () => agent.destroy() };
}
