import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { liveness, renderHealth } from './health.ts';
import type { Heartbeat } from '../../catalogs/system.ts';

const beat = (ageMs: number, now: number): Heartbeat => ({
  service: 'broker',
  instance: 'h:1',
  status: 'ok',
  uptime_seconds: 10,
  interval_ms: 1000,
  counters: { updates_published_price: 5 },
  timestamp: new Date(now - ageMs).toISOString(),
});

describe('tickbus health', () => {
  it('is alive within two intervals, stale within five, gone after', () => {
    const now = Date.now();
    assert.equal(liveness(beat(1500, now), now), 'alive');
    assert.equal(liveness(beat(2000, now), now), 'alive');
    assert.equal(liveness(beat(2500, now), now), 'stale');
    assert.equal(liveness(beat(5000, now), now), 'stale');
    assert.equal(liveness(beat(5001, now), now), 'gone');
  });

  it('renders a table, or says how to start a service when there is none', () => {
    const redis = { target: 'redis://x:1/0', ping_ms: 0.2, used_memory: '1M', connected_clients: 3, pubsub_channels: 2, pubsub_patterns: 1 };
    assert.match(renderHealth({ redis, services: [] }), /No tickbus service has sent a heartbeat.*tickbus broker/);
    const now = Date.now();
    const table = renderHealth({ redis, services: [{ ...beat(9000, now), liveness: 'gone', age_seconds: 9 }] });
    assert.match(table, /SERVICE\s+INSTANCE\s+STATE/);
    assert.match(table, /broker\s+h:1\s+gone\s+ok\s+9s ago\s+10s\s+updates_published_price=5/);
  });
});
