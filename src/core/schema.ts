// Validation through the Standard Schema interface, so a channel accepts zod, valibot,
// arktype or any other compliant validator. Sync results stay sync: the hot path only
// pays for a promise when the validator itself is async.
import type { StandardSchemaV1, StandardJSONSchemaV1 } from '@standard-schema/spec';
import { ConfigError, ValidationError, type ValidationIssue } from './errors.ts';

export type { StandardSchemaV1 };
export type InferOutput<S extends StandardSchemaV1> = StandardSchemaV1.InferOutput<S>;
export type InferInput<S extends StandardSchemaV1> = StandardSchemaV1.InferInput<S>;

export type Validated<T> = { ok: true; value: T } | { ok: false; error: ValidationError };

function toIssues(issues: readonly StandardSchemaV1.Issue[]): ValidationIssue[] {
  return issues.map((issue) => ({
    path: (issue.path ?? [])
      .map((seg) => String(typeof seg === 'object' && seg !== null ? seg.key : seg))
      .join('.'),
    message: issue.message,
  }));
}

/** The ValidationError for a failed Standard Schema result. */
export function validationError(issues: readonly StandardSchemaV1.Issue[], channel: string): ValidationError {
  const list = toIssues(issues);
  const summary = list
    .slice(0, 3)
    .map((i) => (i.path ? `${i.path}: ${i.message}` : i.message))
    .join('; ');
  const more = list.length > 3 ? ` (+${list.length - 3} more)` : '';
  return new ValidationError(`Invalid message for channel "${channel}": ${summary}${more}`, list, { channel });
}

function settle<T>(result: StandardSchemaV1.Result<T>, channel: string): Validated<T> {
  return result.issues ? { ok: false, error: validationError(result.issues, channel) } : { ok: true, value: result.value };
}

/** Validates `value`; returns synchronously when the validator is synchronous. */
export function validate<S extends StandardSchemaV1>(
  schema: S,
  value: unknown,
  channel: string,
): Validated<InferOutput<S>> | Promise<Validated<InferOutput<S>>> {
  const result = schema['~standard'].validate(value) as
    | StandardSchemaV1.Result<InferOutput<S>>
    | Promise<StandardSchemaV1.Result<InferOutput<S>>>;
  if (result instanceof Promise) return result.then((r) => settle(r, channel));
  return settle(result, channel);
}

export type CheckResult<T> = StandardSchemaV1.Result<T>;

/**
 * The validator's own result, unwrapped: `{ value }` or `{ issues }`. For the publish and
 * receive hot paths, where one allocation less per message shows.
 */
export function check<S extends StandardSchemaV1>(schema: S, value: unknown): CheckResult<InferOutput<S>> | Promise<CheckResult<InferOutput<S>>> {
  return schema['~standard'].validate(value);
}

/** Validates synchronously; an async validator is a configuration error here. */
export function validateSync<S extends StandardSchemaV1>(schema: S, value: unknown, channel: string): Validated<InferOutput<S>> {
  const result = validate(schema, value, channel);
  if (result instanceof Promise) {
    throw new ConfigError(`The schema of channel "${channel}" validates asynchronously; use the async API for it.`);
  }
  return result;
}

/** The JSON Schema of a Standard Schema validator that also implements Standard JSON Schema (zod 4 does). */
export function toJsonSchema(schema: StandardSchemaV1, channel: string): Record<string, unknown> {
  const props = schema['~standard'] as StandardSchemaV1.Props & Partial<StandardJSONSchemaV1.Props>;
  if (!props.jsonSchema) {
    throw new ConfigError(
      `The schema of channel "${channel}" (vendor "${props.vendor}") cannot export JSON Schema: use a validator that implements Standard JSON Schema, such as zod 4.`,
    );
  }
  return props.jsonSchema.input({ target: 'draft-2020-12' });
}
