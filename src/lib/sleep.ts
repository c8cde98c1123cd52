/**
 * Waits `ms` milliseconds, or less when `signal` aborts (it then resolves early; callers that must stop
 * check the signal themselves). Never rejects, so a wait cut short is not an error to handle.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (ms <= 0 || signal?.aborted === true) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
