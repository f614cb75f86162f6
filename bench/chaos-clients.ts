// The chaos run's browser-like clients: each a TickbusClient (the gateway's client library,
// src/gateway/public/tickbus-client.js) given both gateways, watching every ticker. After a
// lost connection it moves to the other gateway and resubscribes with `since` = its last
// positions. Each client keeps, per symbol, the positions of the updates it got in arrival
// order and what the gateway told it in between (ClientLog); on SIGTERM they are written to
// the result file (ClientsResult) and it exits 0.
// Usage: node --import tsx bench/chaos-clients.ts <result-file> <gateway-ws-urls-json> <clients> <symbols-json>
import { writeFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { TickbusClient } from '../src/gateway/public/tickbus-client.js';
import type { ClientsResult } from './chaos-common.ts';

const [resultFile, urlsJson, count, symbolsJson] = process.argv.slice(2) as [string, string, string, string];
const urls = JSON.parse(urlsJson) as string[];
const symbols = JSON.parse(symbolsJson) as string[];
const result: ClientsResult = { clients: [] };
const clients: TickbusClient[] = [];

for (let i = 0; i < Number(count); i++) {
  // Half start on each gateway; each moves to the other when its gateway goes.
  const mine = urls.map((_, j) => urls[(i + j) % urls.length] as string);
  const record: ClientsResult['clients'][number] = { id: `client-${i}`, urls: mine, symbols: {}, connects: 0 };
  for (const s of symbols) record.symbols[s] = [];
  const all = (marker: string) => {
    for (const s of symbols) record.symbols[s]?.push(marker);
  };
  const client = new TickbusClient(mine, { WebSocket, reconnect: { baseMs: 100, maxMs: 1000 } });
  client.on('update', (u: { symbol?: string; position?: string }) => {
    if (u.symbol && u.position) record.symbols[u.symbol]?.push(u.position);
  });
  client.on('snapshot', (m: { key: string }) => record.symbols[m.key]?.push('!snapshot'));
  // `gap`: the gateway could not replay all that was missed, and says so.
  client.on('subscribed', (m: { key: string; resume?: string; gap?: boolean }) => record.symbols[m.key]?.push(`!sub:${m.resume ?? '?'}${m.gap ? ':gap' : ''}`));
  client.on('notice', (m: { code?: string; dropped?: number; key?: string }) => {
    const marker = `!notice:${m.code ?? '?'}:${m.dropped ?? 0}`;
    if (m.key !== undefined) record.symbols[m.key]?.push(marker);
    else all(marker);
  });
  client.on('error', (m: { code?: string; key?: string }) => {
    if (m.key && record.symbols[m.key]) record.symbols[m.key]?.push(`!error:${m.code ?? '?'}`);
    else all(`!error:${m.code ?? '?'}`);
  });
  client.on('state', (s: string) => all(`~${s}`));
  client.on('welcome', () => record.connects++);
  client.subscribe(symbols);
  // connect() rejects only when the client gives up; with several URLs it keeps trying.
  void client.connect().catch(() => undefined);
  clients.push(client);
  result.clients.push(record);
}

process.once('SIGTERM', () => {
  for (const c of clients) c.close();
  writeFileSync(resultFile, JSON.stringify(result));
  process.exit(0);
});
process.stdout.write('ready\n');
