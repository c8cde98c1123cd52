/**
 * The logging the transport and the RaftService handler need. It has the shape of the driver's logger
 * (message first, structured fields second), so the driver can hand over the one it already has.
 */
export interface TransportLogger {
  info(msg: string, fields?: object): void;
  warn(msg: string, fields?: object): void;
  error(msg: string, fields?: object): void;
}
