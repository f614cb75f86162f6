// What a suite started and must stop after it: Redis servers, tickbus processes, WebSocket
// clients and buses, released together in the order that leaves nothing reconnecting.
import type { WebSocket } from 'ws';
import type { TickBus } from '../../src/index.ts';
import type { CliProcess } from './cli.ts';
import type { RedisServer } from './redis-server.ts';

export class Held {
  readonly servers: RedisServer[] = [];
  readonly processes: CliProcess[] = [];
  readonly sockets: WebSocket[] = [];
  readonly buses: TickBus[] = [];

  /** Clients first, then buses and processes, the Redis servers last. */
  async release(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    await Promise.all(this.buses.map((b) => b.close()));
    await Promise.all(this.processes.map((p) => p.stop()));
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}
