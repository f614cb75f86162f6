// A WebSocket client of the gateway that keeps every frame it gets, for tests that speak the
// protocol (docs/gateway.md) by hand: send requests, wait for the reply with an id, read the
// updates of batches and the inbox frames.
import { WebSocket } from 'ws';
import { waitFor } from './wait.ts';

export type GatewayMessage = { type: string; id?: unknown; key?: string; code?: string; [k: string]: unknown };
export type GatewayUpdate = { channel: string; position?: string; replayed?: boolean; data: Record<string, unknown> & { symbol?: string } };
export type InboxFrame = { id: string; kind: string; data: Record<string, unknown> };

export class GatewayClient {
  readonly ws: WebSocket;
  readonly messages: GatewayMessage[] = [];
  readonly opened: Promise<void>;

  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.ws.on('message', (data: Buffer) => this.messages.push(JSON.parse(data.toString('utf8')) as GatewayMessage));
    this.opened = new Promise((resolve, reject) => this.ws.once('open', () => resolve()).once('error', reject));
  }

  /** Requests as they are (a string goes out unchanged); several at once leave in the same turn, as a double click's do. */
  send(...ops: unknown[]): void {
    for (const op of ops) this.ws.send(typeof op === 'string' ? op : JSON.stringify(op));
  }

  /** The reply to request `id`: `ok`, `pong`, or an error about the request as a whole (not one key of it). */
  async reply(id: unknown, timeoutMs = 10_000): Promise<GatewayMessage> {
    const isReply = (m: GatewayMessage) => m.id === id && (m.type === 'ok' || m.type === 'pong' || (m.type === 'error' && m.key === undefined));
    await waitFor(() => this.messages.some(isReply), `the reply to ${String(id)}`, timeoutMs);
    return this.messages.find(isReply) as GatewayMessage;
  }

  /** Every update of the batches so far (of one channel, if named). */
  updates(channel?: string): GatewayUpdate[] {
    const all = this.messages.filter((m) => m.type === 'batch').flatMap((m) => m.updates as GatewayUpdate[]);
    return channel === undefined ? all : all.filter((u) => u.channel === channel);
  }

  inbox(): InboxFrame[] {
    return this.messages.filter((m) => m.type === 'inbox') as unknown as InboxFrame[];
  }

  /** The channels the gateway's welcome says it exposes. */
  exposed(): string[] {
    return (this.messages.find((m) => m.type === 'welcome')?.channels as string[] | undefined) ?? [];
  }

  close(): void {
    this.ws.close();
  }
}
