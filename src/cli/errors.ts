// Turns errors into one line for the terminal and an exit code: no stack traces for
// problems the user can fix (an unreachable Redis, an invalid message, a bad URL).
import { BusError, ErrorCode } from '../core/errors.ts';
import { ExitCode } from './exit-codes.ts';

export class CliError extends Error {
  readonly exitCode: ExitCode;

  constructor(message: string, exitCode: ExitCode) {
    super(message);
    this.exitCode = exitCode;
  }
}

export function exitCodeFor(error: unknown): ExitCode {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof BusError) {
    switch (error.code) {
      case ErrorCode.NotConnected:
        return ExitCode.Unreachable;
      case ErrorCode.Validation:
      case ErrorCode.UnknownChannel:
      case ErrorCode.InvalidChannelParam:
      case ErrorCode.MessageTooLarge:
      case ErrorCode.InvalidJson:
      case ErrorCode.DuplicateJob:
        return ExitCode.Invalid;
      case ErrorCode.UnknownJob:
        return ExitCode.NotFound;
      case ErrorCode.Config:
        return ExitCode.Usage;
      default:
        return ExitCode.Failure;
    }
  }
  return ExitCode.Failure;
}

export function describeError(error: unknown): string {
  if (error instanceof BusError) return `${error.message} [${error.code}]`;
  if (error instanceof Error) return error.message;
  return String(error);
}
