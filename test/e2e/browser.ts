import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import type { PageApi, PageInput, PageResult } from "./browser-page.js";

/**
 * Headless Chromium driven by playwright-core: the system's Chromium (Debian's package), never a
 * browser that Playwright downloads. A fresh profile per run, and the flags that keep it from calling
 * home or doing work a test does not need.
 */
export const chromiumPath = "/usr/bin/chromium";
export const chromiumInstallHint = "apt-get install -y chromium";

export function chromiumAvailable(): boolean {
  return existsSync(chromiumPath);
}

const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** How long the page may take to load its script and run its calls. */
const pageTimeoutMs = 30_000;

/** Opens `origin` in a fresh headless Chromium, runs the page's calls with `input`, and closes the browser. */
export async function runPageInChromium(origin: string, input: PageInput): Promise<PageResult> {
  const profile = mkdtempSync(join(tmpdir(), "raftkv-e2e-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: chromiumArgs,
    timeout: pageTimeoutMs,
  });
  const pageErrors: string[] = [];
  try {
    const page = await context.newPage();
    page.on("pageerror", (error) => pageErrors.push(error.message));
    page.setDefaultTimeout(pageTimeoutMs);
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => (globalThis as { raftkvE2e?: PageApi }).raftkvE2e !== undefined);
    return await page.evaluate(async (pageInput) => {
      const api = (globalThis as { raftkvE2e?: PageApi }).raftkvE2e;
      if (api === undefined) throw new Error("the page script did not load");
      return api.run(pageInput);
    }, input);
  } catch (error) {
    const detail = pageErrors.length === 0 ? "" : ` (page errors: ${pageErrors.join("; ")})`;
    throw new Error(`the browser page failed${detail}`, { cause: error });
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
