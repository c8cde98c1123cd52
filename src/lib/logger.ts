/**
 * The one logger every layer takes. Storage, transport, driver and the services receive it; only
 * `src/cli/serve-command.ts` decides where lines go (pino, through `fromPino`).
 *
 * Shape: message first, structured fields second and optional. Most layers already logged this way,
 * and it lets a test or simulator logger be three plain closures. pino takes the reverse order
 * (fields, message) because its message may be followed by printf arguments; nothing here uses those,
 * so the cost of our order is one adapter of three lines, written once in this file.
 *
 * Beware: a pino logger passes for this type by accident. Its `(msg, ...args)` overload accepts
 * `warn("msg", { fields })` and quietly drops the fields, so hand pino loggers over only through
 * `fromPino`.
 *
 * Three levels, no debug: nothing logs below info today, and a level with no caller would be one more
 * method every test logger must stub. Add it together with its first caller.
 */
export interface Logger {
  info(msg: string, fields?: object): void;
  warn(msg: string, fields?: object): void;
  error(msg: string, fields?: object): void;
}

export type LogLevel = keyof Logger;

/** Drops everything: for tests and benchmarks that do not look at what is logged. */
export const silentLogger: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** A logger that adds `fields` to every line (a component name, a peer id), like pino's `child`. */
export function withFields(logger: Logger, fields: object): Logger {
  return {
    info: (msg, more) => logger.info(msg, { ...fields, ...more }),
    warn: (msg, more) => logger.warn(msg, { ...fields, ...more }),
    error: (msg, more) => logger.error(msg, { ...fields, ...more }),
  };
}

/** The part of a pino (or Fastify) logger that `fromPino` calls, in pino's order: fields first. */
export interface PinoStyleLogger {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
  error(fields: object, msg: string): void;
}

/** Adapts a pino logger (or a Fastify request logger, which is one) to `Logger`. */
export function fromPino(logger: PinoStyleLogger): Logger {
  return {
    info: (msg, fields) => logger.info(fields ?? {}, msg),
    warn: (msg, fields) => logger.warn(fields ?? {}, msg),
    error: (msg, fields) => logger.error(fields ?? {}, msg),
  };
}
