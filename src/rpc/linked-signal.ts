/**
 * An AbortSignal that aborts when any parent does (or after `timeoutMs`), released with `dispose()`.
 *
 * AbortSignal.any() is not used where a parent lives long (a server's shutdown signal, a caller's
 * application-wide signal): Node keeps every signal derived that way registered on the parent until the
 * parent is collected (nodejs/node#55351), so a long-lived server would grow by one entry per request.
 */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  dispose(): void;
}

export function linkSignals(parents: readonly (AbortSignal | undefined)[], timeoutMs?: number): LinkedSignal {
  const controller = new AbortController();
  const present = parents.filter((p): p is AbortSignal => p !== undefined);
  const listeners: { parent: AbortSignal; listener: () => void }[] = [];
  let timer: NodeJS.Timeout | undefined;
  const dispose = (): void => {
    for (const { parent, listener } of listeners) parent.removeEventListener("abort", listener);
    listeners.length = 0;
    clearTimeout(timer);
  };
  for (const parent of present) {
    if (parent.aborted) {
      controller.abort(parent.reason);
      dispose();
      return { signal: controller.signal, dispose };
    }
    const listener = (): void => {
      controller.abort(parent.reason);
      dispose();
    };
    parent.addEventListener("abort", listener, { once: true });
    listeners.push({ parent, listener });
  }
  if (timeoutMs !== undefined) {
    timer = setTimeout(() => {
      controller.abort(new DOMException("the deadline passed", "TimeoutError"));
      dispose();
    }, timeoutMs);
    timer.unref();
  }
  return { signal: controller.signal, dispose };
}
