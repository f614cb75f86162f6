// What a consumer of a durable channel may be told (ConsumeOptions), and the settings it
// runs with: each option checked once, at consume(), and its default taken from
// CONSUMER_DEFAULTS, so that a bad value fails the call instead of the read loop.
import { CONSUMER_DEFAULTS } from '../core/defaults.ts';
import { ConfigError, preview } from '../core/errors.ts';

export interface ConsumeOptions {
  /** The consumer group: each message is handled by one member of it. */
  group: string;
  /**
   * This member's name. Give a stable one (per replica) and a restarted process takes back
   * what it held at once; a fresh name leaves that to the others' claiming.
   * @default `<hostname>-<pid>`
   */
  consumer?: string;
  /** Where a new group starts: new messages only, the whole retained stream, or after an id. @default 'new' */
  start?: 'new' | 'beginning' | { after: string };
  /** Handler attempts before a message is dead-lettered. @default 5 */
  maxAttempts?: number;
  /** Back-off between attempts: doubles from baseMs up to maxMs, with jitter. @default { baseMs: 100, maxMs: 5000 } */
  retry?: { baseMs?: number; maxMs?: number };
  /** A message held this long by a consumer without an acknowledgement is claimed by another. @default 30000 */
  claimIdleMs?: number;
  /** How often to look for such messages. @default 5000 */
  claimIntervalMs?: number;
  /** Messages read per round trip. @default 100 */
  batchSize?: number;
  /** How long one read waits for new messages. close() does not wait for it. @default 5000 */
  blockMs?: number;
  /** Entries the dead-letter stream keeps. @default 10000 */
  deadLetterMaxLen?: number;
}

/** A consumer's options, checked, with their defaults filled in. */
export interface ConsumerSettings {
  readonly maxAttempts: number;
  readonly retry: { baseMs: number; maxMs: number };
  readonly claimIdleMs: number;
  readonly claimIntervalMs: number;
  readonly batchSize: number;
  readonly blockMs: number;
  readonly deadLetterMaxLen: number;
  /** Where a new group starts, as XGROUP CREATE takes it: '$', '0' or an id. */
  readonly start: string;
}

function positive(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value <= 0) throw new ConfigError(`consume(): ${name} must be a positive integer, got ${String(value)}.`);
  return value;
}

const GROUP_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;

export function resolveConsumerSettings(o: ConsumeOptions): ConsumerSettings {
  const d = CONSUMER_DEFAULTS;
  if (typeof o.group !== 'string' || !GROUP_NAME.test(o.group)) throw new ConfigError(`consume(): group must be 1-128 letters, digits, "_", ".", ":" or "-", got "${preview(String(o.group))}".`);
  if (o.consumer !== undefined && !GROUP_NAME.test(o.consumer)) throw new ConfigError(`consume(): consumer must be 1-128 letters, digits, "_", ".", ":" or "-", got "${preview(o.consumer)}".`);
  const retry = { baseMs: positive(o.retry?.baseMs ?? d.retryBaseMs, 'retry.baseMs'), maxMs: positive(o.retry?.maxMs ?? d.retryMaxMs, 'retry.maxMs') };
  const claimIdleMs = positive(o.claimIdleMs ?? d.claimIdleMs, 'claimIdleMs');
  // A message waiting for its retry must not look idle to the others.
  if (retry.maxMs >= claimIdleMs) throw new ConfigError(`consume(): retry.maxMs (${retry.maxMs}) must be below claimIdleMs (${claimIdleMs}), or another consumer would claim a message while it waits for its retry.`);
  let start = '$';
  if (o.start === 'beginning') start = '0';
  else if (typeof o.start === 'object') {
    if (!/^\d+(-\d+)?$/.test(o.start.after)) throw new ConfigError(`consume(): start.after must be a stream id such as 1700000000000-0, got "${preview(o.start.after)}".`);
    start = o.start.after;
  } else if (o.start !== undefined && o.start !== 'new') throw new ConfigError(`consume(): start must be 'new', 'beginning' or { after: id }.`);
  return {
    maxAttempts: positive(o.maxAttempts ?? d.maxAttempts, 'maxAttempts'),
    retry,
    claimIdleMs,
    claimIntervalMs: positive(o.claimIntervalMs ?? d.claimIntervalMs, 'claimIntervalMs'),
    batchSize: positive(o.batchSize ?? d.batchSize, 'batchSize'),
    blockMs: positive(o.blockMs ?? d.blockMs, 'blockMs'),
    deadLetterMaxLen: positive(o.deadLetterMaxLen ?? d.deadLetterMaxLen, 'deadLetterMaxLen'),
    start,
  };
}
