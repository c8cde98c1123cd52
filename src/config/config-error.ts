/**
 * A setting that cannot be used. The message names the flag and the environment variable, so a person
 * reading it in a pod log knows which line of the manifest to fix.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";

  constructor(
    /** The setting's flag name without dashes (for example `election-ticks`), or "" for a general problem. */
    readonly setting: string,
    message: string,
  ) {
    super(message);
  }
}
