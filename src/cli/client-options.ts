import { parseArgs } from "node:util";
import { createRaftkvClient, normalizeEndpoint, type ClientProtocol, type RaftkvClient } from "../rpc/client/index.js";
import type { CliIo } from "./cli-io.js";
import { UsageError } from "./usage-error.js";

/** The client endpoints of the cluster `npm start` runs (see scripts/start-cluster.ts). */
export const defaultEndpoints = ["http://127.0.0.1:2379", "http://127.0.0.1:22379", "http://127.0.0.1:32379"];

export type OutputFormat = "table" | "json";

export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly multiple?: boolean;
  readonly short?: string;
  readonly placeholder?: string;
  readonly help: string;
}

/** Flags every client verb takes. */
export const clientOptionSpecs: Readonly<Record<string, OptionSpec>> = {
  endpoints: {
    type: "string",
    placeholder: "URL,...",
    help: `Client URLs of cluster members (env RAFTKV_ENDPOINTS; default ${defaultEndpoints.join(",")}). Any member will do: writes find the leader.`,
  },
  output: {
    type: "string",
    short: "o",
    placeholder: "table|json",
    help: "table for people (default), json for scripts (one protobuf-JSON object per line).",
  },
  timeout: { type: "string", placeholder: "DURATION", help: "How long to keep trying, across retries and leader changes (default 10s)." },
  protocol: { type: "string", placeholder: "grpc|connect|grpc-web", help: "Wire protocol (default grpc, over HTTP/2)." },
  help: { type: "boolean", short: "h", help: "Show this help." },
};

export interface ParsedCommandLine {
  readonly positionals: readonly string[];
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
}

export function parseCommandLine(args: readonly string[], options: Readonly<Record<string, OptionSpec>>): ParsedCommandLine {
  const config: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {};
  for (const [name, spec] of Object.entries(options)) {
    config[name] = {
      type: spec.type,
      ...(spec.multiple === true ? { multiple: true } : {}),
      ...(spec.short === undefined ? {} : { short: spec.short }),
    };
  }
  try {
    const { values, positionals } = parseArgs({ args: [...args], options: config, strict: true, allowPositionals: true });
    return { positionals, values };
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

export interface ClientSettings {
  readonly endpoints: readonly string[];
  readonly output: OutputFormat;
  readonly timeoutMs: number;
  readonly protocol: ClientProtocol;
}

export function clientSettings(values: ParsedCommandLine["values"], io: CliIo): ClientSettings {
  const endpointsText = stringValue(values.endpoints) ?? io.env.RAFTKV_ENDPOINTS;
  const endpoints =
    endpointsText === undefined
      ? defaultEndpoints
      : endpointsText
          .split(",")
          .map((e) => e.trim())
          .filter((e) => e !== "");
  if (endpoints.length === 0) throw new UsageError("--endpoints is empty; give at least one client URL like http://127.0.0.1:2379");
  for (const endpoint of endpoints) {
    try {
      normalizeEndpoint(endpoint);
    } catch {
      throw new UsageError(`--endpoints: ${JSON.stringify(endpoint)} is not a URL like http://127.0.0.1:2379`);
    }
  }
  const output = stringValue(values.output) ?? "table";
  if (output !== "table" && output !== "json") throw new UsageError(`--output must be table or json, got ${JSON.stringify(output)}`);
  const protocol = stringValue(values.protocol) ?? "grpc";
  if (protocol !== "grpc" && protocol !== "connect" && protocol !== "grpc-web") {
    throw new UsageError(`--protocol must be grpc, connect or grpc-web, got ${JSON.stringify(protocol)}`);
  }
  const timeoutText = stringValue(values.timeout);
  const timeoutMs = timeoutText === undefined ? 10_000 : parseDuration("--timeout", timeoutText);
  return { endpoints, output, timeoutMs, protocol };
}

export function createClientFrom(settings: ClientSettings): RaftkvClient {
  return createRaftkvClient({
    endpoints: settings.endpoints,
    protocol: settings.protocol,
    timeoutMs: settings.timeoutMs,
    attemptTimeoutMs: Math.min(3_000, settings.timeoutMs),
  });
}

/** A duration like 500ms, 5s or 1m. */
export function parseDuration(flag: string, text: string): number {
  const match = /^(\d+)(ms|s|m)$/.exec(text.trim());
  if (match === null) throw new UsageError(`${flag} must be a duration like 500ms, 5s or 1m, got ${JSON.stringify(text)}`);
  const value = Number(match[1]) * (match[2] === "ms" ? 1 : match[2] === "s" ? 1_000 : 60_000);
  if (value < 1 || value > 3_600_000) throw new UsageError(`${flag} must be between 1ms and 60m, got ${JSON.stringify(text)}`);
  return value;
}

export function stringValue(value: ParsedCommandLine["values"][string]): string | undefined {
  return typeof value === "string" ? value : undefined;
}

export function stringValues(value: ParsedCommandLine["values"][string]): string[] {
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** A non-negative whole number flag (a revision, a limit, a count). */
export function wholeNumber(flag: string, text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,15}$/.test(text)) throw new UsageError(`${flag} must be a whole number, got ${JSON.stringify(text)}`);
  return BigInt(text);
}
