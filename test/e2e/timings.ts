/**
 * Wall-clock durations of the phases of an e2e file (start-up, failover, restart, ...), printed once at
 * the end so that a slow or flaky run shows where its time went. Never asserted on: the machine is shared.
 */
export class Timings {
  private readonly entries: { readonly label: string; readonly ms: number }[] = [];

  async time<T>(label: string, phase: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await phase();
    } finally {
      this.entries.push({ label, ms: Math.round(performance.now() - started) });
    }
  }

  summary(title: string): string {
    return [`${title} timings (ms):`, ...this.entries.map((e) => `  ${e.label.padEnd(48)} ${String(e.ms).padStart(6)}`)].join("\n");
  }
}
