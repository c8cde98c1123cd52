/**
 * The cluster page's script (runs in the browser; `npm run build` bundles it with esbuild into
 * dist/page/cluster-page.js, which the client port serves). It asks the node that served the page for
 * ClusterStatus once a second over Connect and redraws. The project compiles against Node's types only,
 * so the two browser objects it touches are described here instead of pulling the DOM library into
 * the server's compilation.
 */
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { ClusterService } from "../../gen/raftkv/v1/cluster_pb.js";
import { clusterRates, counterSamples, renderCluster, type CounterSample } from "./cluster-view.js";

interface PageElement {
  innerHTML: string;
}
interface PageGlobals {
  readonly document: { getElementById(id: string): PageElement | null };
  readonly location: { readonly origin: string };
}

const refreshMs = 1_000;
/** Longer than a refresh so that a slow answer is not cut short, short enough to show a dead node soon. */
const callTimeoutMs = 3_000;

const page = globalThis as unknown as PageGlobals;
const cluster = createClient(ClusterService, createConnectTransport({ baseUrl: page.location.origin, useBinaryFormat: true }));

async function refreshForever(): Promise<void> {
  let previous: Map<bigint, CounterSample> | undefined;
  for (;;) {
    const app = page.document.getElementById("app");
    try {
      const answer = await cluster.clusterStatus({}, { timeoutMs: callTimeoutMs });
      const now = Date.now();
      const samples = counterSamples(answer, now);
      if (app !== null) app.innerHTML = renderCluster(answer, previous === undefined ? undefined : clusterRates(previous, samples), now);
      previous = samples;
    } catch (error) {
      if (app !== null)
        app.innerHTML = `<p class="down" id="error">the node that served this page does not answer: ${String(error).replace(/</g, "&lt;")}</p>`;
    }
    await new Promise((resolve) => setTimeout(resolve, refreshMs));
  }
}

void refreshForever();
