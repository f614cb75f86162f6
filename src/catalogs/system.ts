// tickbus's own channels: the heartbeat every tickbus service publishes, and the per-user
// notices of the gateways' inboxes (docs/gateway.md, "The TickStock loop in the browser").
import { z } from 'zod';
import { defineChannel } from '../core/channel.ts';
import { defineCatalog } from '../core/catalog.ts';
import { defineParam } from '../core/channel-param.ts';
import { isoTimestamp } from './fields.ts';

export const HeartbeatSchema = z.object({
  /** What kind of service: broker, gateway, bot, … */
  service: z.string().min(1).max(64),
  /** This process: host:pid unless configured. */
  instance: z.string().min(1).max(128),
  status: z.enum(['ok', 'degraded', 'down']),
  uptime_seconds: z.number().nonnegative(),
  /** How often this service beats, so readers know when it is late. */
  interval_ms: z.number().int().positive(),
  counters: z.record(z.string(), z.number()).default({}),
  details: z.record(z.string(), z.unknown()).optional(),
  timestamp: isoTimestamp,
});

export type Heartbeat = z.output<typeof HeartbeatSchema>;

export const ServiceHealth = defineChannel({
  name: 'tickbus.health',
  schema: HeartbeatSchema,
  description: 'Heartbeats of every tickbus service: status, uptime and counters, at a fixed interval.',
});

/** A user id as the gateways take it (a JWT `sub`, or the `user` of a request): 1 to 128 characters. */
export const USER_ID = defineParam({
  label: 'user id',
  allow: /^[A-Za-z0-9_.:-]{1,128}$/,
  maxLength: 128,
  rule: 'letters, digits, "_", "-", "." and ":", 1 to 128 characters',
});

/**
 * One entry just appended to a user's inbox (the stream `user_messages:<user>`), published in
 * the same script as the XADD: its stream id, what it is, and the entry's data (the pattern
 * event, or the backtest result). Built by the Lua script of gateway/alert-router.ts.
 */
export const InboxNoticeSchema = z.object({
  id: z.string().min(3).max(48),
  kind: z.enum(['alert', 'job_result']),
  data: z.record(z.string(), z.unknown()),
});

export type InboxNotice = z.output<typeof InboxNoticeSchema>;

export const InboxNotices = defineChannel({
  name: 'tickbus.inbox.{user}',
  schema: InboxNoticeSchema,
  params: { user: USER_ID },
  wire: 'bare',
  description: "A user's new inbox entries (alerts, job results), to the gateways that serve that user.",
});

export const systemCatalog = defineCatalog('system', "tickbus's own channels.", { ServiceHealth, InboxNotices });
