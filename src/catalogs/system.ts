// tickbus's own channels: the heartbeat every tickbus service publishes.
import { z } from 'zod';
import { defineChannel } from '../core/channel.ts';
import { defineCatalog } from '../core/catalog.ts';
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

export const systemCatalog = defineCatalog('system', "tickbus's own channels.", { ServiceHealth });
