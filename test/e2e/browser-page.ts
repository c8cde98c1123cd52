/**
 * The script of the page that the headless browser loads (bundled with esbuild by page-server.ts; it
 * runs in Chromium, not in Node). It calls a raftkv cluster the way a web app would, with connect-web:
 * a Put on a follower with the Connect protocol, which must answer "not the leader" with the leader's
 * URL readable through CORS; the same Put there; and a linearizable Get on the follower with gRPC-web.
 */
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { KvService, type GetResponse } from "../../gen/raftkv/v1/kv_pb.js";

export interface PageInput {
  /** The client URL of a follower. */
  readonly follower: string;
  readonly key: string;
  readonly value: string;
}

export interface PageResult {
  /** The Connect code of the follower's refusal, null when it accepted the write. */
  readonly refusalCode: number | null;
  /** raftkv-error and raftkv-leader of that refusal, as the page could read them. */
  readonly refusalReason: string | null;
  readonly leaderHint: string | null;
  /** The revision of the Put on the leader. */
  readonly revision: string;
  /** What the linearizable Get on the follower returned, over gRPC-web. */
  readonly gotValue: string;
  readonly gotFrom: string;
}

export interface PageApi {
  run(input: PageInput): Promise<PageResult>;
}

const utf8 = new TextEncoder();

/** Attempts of a linearizable read that the node answers Unavailable (a ReadIndex round that came late). */
const readAttemptsMax = 20;
const readRetryMs = 100;

async function getRetryingUnavailable(kv: Client<typeof KvService>, key: Uint8Array): Promise<GetResponse> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await kv.get({ key });
    } catch (error) {
      if (ConnectError.from(error).code !== Code.Unavailable || attempt >= readAttemptsMax) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, readRetryMs));
  }
}

async function run(input: PageInput): Promise<PageResult> {
  const connectTo = (baseUrl: string) => createClient(KvService, createConnectTransport({ baseUrl }));
  const request = { key: utf8.encode(input.key), value: utf8.encode(input.value) };
  let refusal: ConnectError | undefined;
  let leader = input.follower;
  try {
    await connectTo(input.follower).put(request);
  } catch (error) {
    refusal = ConnectError.from(error);
    leader = refusal.metadata.get("raftkv-leader") ?? input.follower;
  }
  const put = await connectTo(leader).put(request);
  const got = await getRetryingUnavailable(createClient(KvService, createGrpcWebTransport({ baseUrl: input.follower })), request.key);
  return {
    refusalCode: refusal?.code ?? null,
    refusalReason: refusal?.metadata.get("raftkv-error") ?? null,
    leaderHint: refusal?.metadata.get("raftkv-leader") ?? null,
    revision: String(put.header?.revision ?? 0n),
    gotValue: new TextDecoder().decode(got.kv?.value),
    gotFrom: String(got.header?.memberId ?? 0n),
  };
}

const api: PageApi = { run };
(globalThis as { raftkvE2e?: PageApi }).raftkvE2e = api;
