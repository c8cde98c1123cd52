import { ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { RaftkvMetrics } from "../metrics/index.js";

/**
 * Counts every client RPC by method and final code, and times it; a stream is timed until it ends,
 * and its code is the one it ended with.
 */
export function rpcMetricsInterceptor(metrics: Pick<RaftkvMetrics, "rpc">): Interceptor {
  return (next) => async (request) => {
    const started = performance.now();
    const method = request.method.name;
    const finish = (error: unknown): void => {
      metrics.rpc(method, error === undefined ? "ok" : codeToString(ConnectError.from(error).code), performance.now() - started);
    };
    let response;
    try {
      response = await next(request);
    } catch (error) {
      finish(error);
      throw error;
    }
    if (!response.stream) {
      finish(undefined);
      return response;
    }
    return { ...response, message: observed(response.message, finish) };
  };
}

async function* observed<T>(messages: AsyncIterable<T>, finish: (error: unknown) => void): AsyncIterable<T> {
  let failure: unknown;
  try {
    yield* messages;
  } catch (error) {
    failure = error;
    throw error;
  } finally {
    finish(failure);
  }
}
