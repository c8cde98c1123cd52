import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../src/metrics/index.js";

const operations = readFileSync(join(import.meta.dirname, "..", "..", "docs", "operations.md"), "utf8");

describe("docs/operations.md", () => {
  it("documents every raftkv metric", () => {
    const names = createMetrics({ processMetrics: false })
      .registry.getMetricsAsArray()
      .map((m) => m.name);
    expect(names.length).toBeGreaterThan(10);
    for (const name of names) expect(operations, name).toContain(`\`${name}\``);
  });
});
