import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromiumAvailable, chromiumInstallHint, chromiumPath } from "./browser.js";
import { bytes } from "./bytes.js";
import { repoRoot, sleep, startE2eCluster, type E2eCluster } from "./e2e-cluster.js";
import { Timings } from "./timings.js";

/**
 * The live cluster page (`/` on the client port) in headless Chromium against a real 3-node cluster under
 * a light load: it shows the three members and the leader, and after kill -9 of the leader it shows the
 * new leader within a few seconds, with the old one unreachable and the change in its history. The page
 * is opened on a follower (the leader's own page dies with it). Ends with a screenshot for the README.
 */

/** How long the page may take to show what the cluster already is (two refreshes and some slack). */
const showsMs = 10_000;
/** How long after the kill the page must name the new leader: an election here takes well under a second. */
const followsLeaderMs = 8_000;
const screenshot = join(repoRoot, "docs", "cluster-page.png");

if (!chromiumAvailable()) console.warn(`e2e: the cluster page test is skipped: ${chromiumPath} is missing (${chromiumInstallHint})`);

describe.skipIf(!chromiumAvailable())(`the cluster page in headless Chromium (skipped when ${chromiumPath} is missing)`, () => {
  const timings = new Timings();
  let cluster: E2eCluster | undefined;
  let context: BrowserContext | undefined;
  let page: Page | undefined;
  let profile = "";
  let loading = true;
  let load: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    // The page's script comes from `npm run build`, which the test setup (test/build-once.ts) runs.
    cluster = await timings.time("start a 3-node cluster", () => startE2eCluster());
    const client = cluster.client;
    // A light, steady load so that the write and read rates have something to show.
    load = (async () => {
      for (let i = 0; loading; i++) {
        await client.put({ key: bytes(`page/${i % 50}`), value: bytes(String(i)) }).catch(() => undefined);
        await client.get({ key: bytes(`page/${i % 50}`) }).catch(() => undefined);
        await sleep(20);
      }
    })();
    profile = mkdtempSync(join(tmpdir(), "raftkv-e2e-chromium-"));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
      viewport: { width: 1100, height: 520 },
    });
  });

  afterAll(async () => {
    loading = false;
    await load;
    await context?.close();
    if (profile !== "") rmSync(profile, { recursive: true, force: true });
    await cluster?.close();
    console.log(timings.summary("cluster page"));
  });

  /** The page's view: the leader it names and each row's member id and role. */
  const view = async (): Promise<{ leader: number; rows: [number, string][] }> => {
    if (page === undefined) throw new Error("no page");
    const leader = Number(await page.getAttribute("#leader", "data-leader-id", { timeout: 1_000 }));
    const rows = await page.$$eval("#members tbody tr", (trs) =>
      trs.map((tr) => [Number(tr.getAttribute("data-member-id")), tr.getAttribute("data-role") ?? ""] as [number, string]),
    );
    return { leader, rows };
  };
  const waitForView = async (
    what: string,
    timeoutMs: number,
    holds: (v: { leader: number; rows: [number, string][] }) => boolean,
  ): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        last = await view();
        if (holds(last as { leader: number; rows: [number, string][] })) return;
      } catch (error) {
        last = error;
      }
      await sleep(100);
    }
    throw new Error(`the page did not show ${what} within ${timeoutMs} ms; it showed ${JSON.stringify(last)}`);
  };

  it("shows the three members and the leader, then follows a leader kill -9 to the new leader", async () => {
    if (cluster === undefined || context === undefined) throw new Error("not started");
    const c = cluster;
    const first = await c.stableLeader();
    const follower = c.ids.find((id) => id !== first.id) ?? 0;
    page = await context.newPage();
    const pageErrors: string[] = [];
    page.on("pageerror", (error) => pageErrors.push(error.message));
    const response = await page.goto(`${c.cluster.clientUrl(follower)}/`);
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-type"]).toContain("text/html");

    await timings.time("page shows 3 members and the leader", () =>
      waitForView(
        `3 members led by node ${first.id}`,
        showsMs,
        (v) => v.leader === first.id && v.rows.length === 3 && v.rows.filter(([, role]) => role === "leader").length === 1,
      ),
    );
    expect((await view()).rows).toEqual(c.ids.map((id) => [id, id === first.id ? "leader" : "follower"]));
    // The load above shows as write and read rates once two answers were compared.
    const rates = async (): Promise<number[]> =>
      Promise.all(["#write-rate", "#read-rate"].map(async (selector) => Number(await page?.textContent(selector))));
    const ratesDeadline = Date.now() + showsMs;
    while (!(await rates()).every((rate) => rate > 0) && Date.now() < ratesDeadline) await sleep(100);
    expect(await rates()).toEqual([expect.any(Number), expect.any(Number)]);
    for (const rate of await rates()) expect(rate).toBeGreaterThan(0);

    const killedAt = performance.now();
    await c.cluster.node(first.id).kill();
    await timings.time("page names the new leader after kill -9", () =>
      waitForView(
        "a new leader",
        followsLeaderMs,
        (v) => v.leader !== 0 && v.leader !== first.id && v.rows.some(([id, role]) => id === first.id && role === "unreachable"),
      ),
    );
    const shownAfterMs = Math.round(performance.now() - killedAt);
    const second = await c.stableLeader(15_000, first);
    await waitForView(`node ${second.id} as leader`, showsMs, (v) => v.leader === second.id);
    expect(await page.textContent("#leader-changes")).toContain(`term ${second.term}, leader`);
    console.log(`cluster page: the new leader (node ${second.id}) shown ${shownAfterMs} ms after the kill of node ${first.id}`);

    // Back to three healthy members for the README's screenshot.
    c.restart(first.id);
    await timings.time("page shows the restarted member", () =>
      waitForView(
        "three reachable members",
        30_000,
        (v) => v.rows.length === 3 && v.rows.every(([, role]) => role === "leader" || role === "follower"),
      ),
    );
    await sleep(2_500); // two refreshes with the load running, so the rates are steady in the picture
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(pageErrors).toEqual([]);
  });
});
