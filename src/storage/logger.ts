/** Where storage reports what it repaired or refused; a pino logger fits behind it. */
export type Logger = (level: "info" | "warn" | "error", msg: string, fields?: object) => void;

/** The default when none is given: warnings and errors to stderr, one JSON line each, so repairs are never silent. */
export const stderrLogger: Logger = (level, msg, fields) => {
  if (level === "info") return;
  process.stderr.write(`${JSON.stringify({ level, component: "storage", msg, ...fields })}\n`);
};
