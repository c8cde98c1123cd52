import { describeDefault, envName, settingSpecs } from "./settings.js";

/** The text of `raftkv serve --help`: every setting with its flag, variable and default. */
export function serveHelp(): string {
  const lines = [
    "Usage: raftkv serve [flags]",
    "",
    "Runs one raftkv node. Every flag can also be set through its environment variable; a flag wins.",
    "",
  ];
  for (const spec of settingSpecs) {
    lines.push(`  --${spec.flag} ${spec.placeholder}`);
    lines.push(`      ${spec.help}`);
    lines.push(`      env ${envName(spec.flag)}; default: ${describeDefault(spec.default)}`);
  }
  lines.push(
    "",
    "Example (node 2 of the npm start cluster):",
    "  raftkv serve --id 2 \\",
    "    --initial-cluster '1=http://127.0.0.1:2380|http://127.0.0.1:2379,2=http://127.0.0.1:22380|http://127.0.0.1:22379,3=http://127.0.0.1:32380|http://127.0.0.1:32379'",
    "",
  );
  return lines.join("\n");
}
