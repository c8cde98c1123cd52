/** A mistake on the command line: reported with the command's usage, exit code 2, nothing sent. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}
