/** An error whose message is meant for the user as it is: the CLI prints it without a stack. */
export class UserError extends Error {
  override name = 'UserError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
