import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { envName, settingSpecs } from "../../src/config/index.js";

const operations = readFileSync(join(import.meta.dirname, "..", "..", "docs", "operations.md"), "utf8");

describe("docs/operations.md", () => {
  it("documents every serve setting with its flag and environment variable", () => {
    for (const spec of settingSpecs) {
      expect(operations, spec.flag).toContain(`\`--${spec.flag} `);
      expect(operations, spec.flag).toContain(`\`${envName(spec.flag)}\``);
    }
  });
});
