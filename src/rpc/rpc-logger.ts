/** The slice of a pino logger the services use (pino's argument order: fields first). */
export interface RpcLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}
