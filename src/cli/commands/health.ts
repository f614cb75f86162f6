// `tickbus health`: every tickbus service (from its heartbeats) and Redis itself, in one
// table; `--watch` keeps it live.
import type { Command } from 'commander';
import type { RedisCommands } from '../../transports/redis/redis-commands.ts';
import { resolveRedisConfig } from '../../core/config.ts';
import type { Heartbeat } from '../../catalogs/system.ts';
import { addConnectionOptions, type ConnectionOptions } from './shared.ts';

export type Liveness = 'alive' | 'stale' | 'gone';

/** Alive within two intervals of its last beat, stale within five, gone after that. */
export function liveness(beat: Heartbeat, now: number): Liveness {
  const age = now - Date.parse(beat.timestamp);
  if (age <= 2 * beat.interval_ms) return 'alive';
  if (age <= 5 * beat.interval_ms) return 'stale';
  return 'gone';
}

export interface HealthSnapshot {
  redis: { target: string; ping_ms: number; used_memory: string; connected_clients: number; pubsub_channels: number; pubsub_patterns: number };
  services: Array<Heartbeat & { liveness: Liveness; age_seconds: number }>;
}

/** On a cluster the Redis figures are those of the node that holds the heartbeats. */
export async function healthSnapshot(client: RedisCommands, target: string): Promise<HealthSnapshot> {
  const [{ hashReply }, { HeartbeatSchema }, { HEARTBEAT_TTL_INTERVALS }, { HEARTBEATS_KEY }] = await Promise.all([
    import('../../transports/redis/redis-commands.ts'),
    import('../../catalogs/system.ts'),
    import('../../ops/heartbeat.ts'),
    import('../../core/keys.ts'),
  ]);
  const started = performance.now();
  await client.send(['PING'], HEARTBEATS_KEY);
  const ping = performance.now() - started;
  const info = parseInfo(await client.send<string>(['INFO'], HEARTBEATS_KEY));
  const channels = await client.send<unknown[]>(['PUBSUB', 'CHANNELS'], HEARTBEATS_KEY);
  const numpat = Number(await client.send(['PUBSUB', 'NUMPAT'], HEARTBEATS_KEY));
  const raw = hashReply(await client.send(['HGETALL', HEARTBEATS_KEY], HEARTBEATS_KEY));
  const now = Date.now();
  const services = Object.values(raw)
    .map((json) => HeartbeatSchema.safeParse(JSON.parse(json)))
    .filter((r) => r.success)
    // Expired, not yet pruned (by the next beat of a live service, or the keys' own expiry).
    .filter((r) => now - Date.parse(r.data.timestamp) <= HEARTBEAT_TTL_INTERVALS * r.data.interval_ms)
    .map((r) => ({ ...r.data, liveness: liveness(r.data, now), age_seconds: Math.round((now - Date.parse(r.data.timestamp)) / 100) / 10 }))
    .sort((a, b) => a.service.localeCompare(b.service) || a.instance.localeCompare(b.instance));
  return {
    redis: {
      target,
      ping_ms: Math.round(ping * 100) / 100,
      used_memory: info.used_memory_human ?? '?',
      connected_clients: Number(info.connected_clients ?? 0),
      pubsub_channels: channels.length,
      pubsub_patterns: numpat,
    },
    services,
  };
}

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

export function renderHealth(s: HealthSnapshot): string {
  const r = s.redis;
  const lines = [
    `Redis ${r.target}: ping ${r.ping_ms} ms, memory ${r.used_memory}, ${r.connected_clients} clients, ${r.pubsub_channels} pub/sub channels, ${r.pubsub_patterns} patterns`,
    '',
  ];
  if (s.services.length === 0) {
    lines.push('No tickbus service has sent a heartbeat to this Redis. Start one with `tickbus broker` or `tickbus up`.');
    return lines.join('\n');
  }
  const rows = [['SERVICE', 'INSTANCE', 'STATE', 'STATUS', 'LAST BEAT', 'UPTIME', 'COUNTERS']];
  for (const svc of s.services) {
    const counters = Object.entries(svc.counters)
      .slice(0, 4)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    rows.push([svc.service, svc.instance, svc.liveness, svc.status, `${svc.age_seconds}s ago`, `${svc.uptime_seconds}s`, counters]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  for (const row of rows) lines.push(row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
  return lines.join('\n');
}

export function registerHealth(program: Command): void {
  addConnectionOptions(
    program
      .command('health')
      .description('Show every tickbus service (alive, stale, gone) and Redis itself.')
      .option('--watch', 'keep refreshing every second (Ctrl-C to stop)')
      .option('--json', 'print one JSON document'),
  )
    .addHelpText(
      'after',
      `
A service is alive within two heartbeat intervals of its last beat, stale within five,
gone after that; its beat expires after six. A service that stops cleanly removes its own.

Examples:
  $ tickbus health
  $ tickbus health --watch
  $ tickbus health --json | jq '.services[] | select(.liveness != "alive")'`,
    )
    .action(async (options: ConnectionOptions & { watch?: boolean; json?: boolean }) => {
      const cfg = resolveRedisConfig(options.redisUrl ? { url: options.redisUrl } : {});
      const { RedisCommands } = await import('../../transports/redis/redis-commands.ts');
      const client = await RedisCommands.connect(cfg, { name: 'tickbus:health', connectTimeoutMs: 1500, reconnect: false });
      try {
        if (!options.watch) {
          const snapshot = await healthSnapshot(client, cfg.display);
          process.stdout.write(options.json ? `${JSON.stringify(snapshot, null, 2)}\n` : `${renderHealth(snapshot)}\n`);
          return;
        }
        let stop = false;
        const onSignal = () => (stop = true);
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        while (!stop) {
          const snapshot = await healthSnapshot(client, cfg.display);
          process.stdout.write(options.json ? `${JSON.stringify(snapshot)}\n` : `\x1b[2J\x1b[H${new Date().toISOString()}\n${renderHealth(snapshot)}\n`);
          await new Promise((r) => setTimeout(r, 1000));
        }
      } finally {
        await client.close();
      }
    });
}
