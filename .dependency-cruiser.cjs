/** Import directions of docs/design.md ("Import rules"), enforced mechanically. */
const allowed = {
  lib: [],
  core: ["lib"],
  storage: ["lib", "core"],
  transport: ["lib", "core"],
  kv: ["lib"],
  metrics: ["lib"],
  config: ["lib"],
  driver: ["lib", "core", "storage", "transport", "kv", "metrics", "config"],
  rpc: ["lib", "core", "driver", "kv", "metrics", "transport"],
  server: ["lib", "rpc", "metrics", "driver", "config"],
  cli: ["lib", "core", "storage", "transport", "kv", "driver", "rpc", "server", "metrics", "config"],
  // The cluster page's browser script: generated messages and connect-web only; the server serves its bundle, never imports it.
  page: [],
};
const noGen = ["lib", "core", "storage", "metrics", "config"];

module.exports = {
  forbidden: [
    { name: "no-cycles", severity: "error", from: {}, to: { circular: true } },
    {
      // The bundled client runs in other people's processes: it shares only the wire contract with the
      // server (header names, reasons and what each means), never the server's own modules.
      name: "client-sdk-wire-contract-only",
      severity: "error",
      from: { path: "^src/rpc/client/" },
      to: { path: "^src/", pathNot: ["^src/rpc/client/", "^src/rpc/wire-contract\\.ts$", "^src/lib/"] },
    },
    ...Object.entries(allowed).map(([mod, deps]) => ({
      name: `${mod}-imports`,
      severity: "error",
      comment: `src/${mod} may import only: ${deps.join(", ") || "nothing internal"}`,
      from: { path: `^src/${mod}/` },
      to: { path: "^src/", pathNot: [`^src/${mod}/`, ...deps.map((d) => `^src/${d}/`)] },
    })),
    ...noGen.map((mod) => ({
      name: `${mod}-no-gen`,
      severity: "error",
      comment: `src/${mod} does not depend on generated protobuf code`,
      from: { path: `^src/${mod}/` },
      to: { path: "^gen/" },
    })),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: [".ts", ".js"] },
  },
};
