// Exit codes scripts can rely on. Documented in `tickbus --help`.
export const ExitCode = {
  Ok: 0,
  /** Something unexpected failed; the message says what. */
  Failure: 1,
  /** The command line was wrong (unknown option, missing argument). */
  Usage: 2,
  /** A message failed its channel's schema, or named an unknown channel. */
  Invalid: 3,
  /** Redis could not be reached. */
  Unreachable: 4,
  /** The message was published but nobody received it (no broker running). */
  NoReceiver: 5,
  /** What was asked for does not exist (a job id with no record). */
  NotFound: 6,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];
