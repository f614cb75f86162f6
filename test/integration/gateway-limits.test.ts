// Gateway clients cannot exhaust the broker's tickers (fault 4 of issue 14). Several
// unauthenticated connections each ask for 200 made-up symbols: the gateway's room limits
// refuse them with TB_ERR_ROOM_LIMIT, and the broker keeps a share of its tickers for
// registrants that are not gateways, so a bot's registration still succeeds, even when a
// gateway's own limits are raised past the broker's. Real redis-server, broker and gateway
// processes.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { BrokerRegistration, createBus, type TickBus } from '../../src/index.ts';
import { BrokerErrors } from '../../src/catalogs/broker.ts';
import { CliProcess } from '../harness/cli.ts';
import { startRedis } from '../harness/redis-server.ts';
import { sleep, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';
import { Held } from '../harness/held.ts';

type Msg = { type: string; id?: unknown; key?: string; code?: string; keys?: string[]; failed?: string[] };

const CONNECTIONS = 6;
const SYMBOLS = 200;

interface BrokerHealth {
  tickers: number;
  ticker_list: string[];
}

describe('room limits and the broker share for gateways', () => {
  const held = new Held();
  const { servers, processes, sockets, buses } = held;
  after(() => held.release());

  async function system(gatewayArgs: string[]): Promise<{ health: () => Promise<BrokerHealth>; wsUrl: string; bus: TickBus; notices: Array<{ code: string; client_id?: string | undefined; ticker?: string | undefined }> }> {
    const server = await startRedis();
    servers.push(server);
    const broker = new CliProcess(['broker', '--redis-url', server.url, '--port', '0', '--rate', '0.2']);
    const gateway = new CliProcess(['gateway', '--redis-url', server.url, '--port', '0', ...gatewayArgs]);
    processes.push(broker, gateway);
    const healthUrl = (await broker.waitFor(/health (http\S+\/health)/))[1] as string;
    const wsUrl = (await gateway.waitFor(/websocket (ws\S+)/))[1] as string;
    const bus = createBus({ redis: { url: server.url }, logger: silentLogger });
    buses.push(bus);
    await bus.connect();
    const notices: Array<{ code: string; client_id?: string | undefined; ticker?: string | undefined }> = [];
    await bus.subscribe(BrokerErrors, (n) => notices.push(n));
    return { health: async () => (await (await fetch(healthUrl)).json()) as BrokerHealth, wsUrl, bus, notices };
  }

  /** Six connections, each subscribing to 200 symbols nobody trades; resolves with what each was told. */
  async function flood(wsUrl: string): Promise<Msg[][]> {
    return Promise.all(
      Array.from({ length: CONNECTIONS }, async (_, c) => {
        const ws = new WebSocket(wsUrl);
        sockets.push(ws);
        const got: Msg[] = [];
        ws.on('message', (d: Buffer) => got.push(JSON.parse(d.toString('utf8')) as Msg));
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
        ws.send(JSON.stringify({ op: 'subscribe', symbols: Array.from({ length: SYMBOLS }, (_, i) => `FAKE${c}X${i}`), id: `flood-${c}` }));
        await waitFor(() => got.some((m) => m.id === `flood-${c}` && (m.type === 'ok' || (m.type === 'error' && m.key === undefined))), `the reply to connection ${c}'s flood`, 60_000);
        return got;
      }),
    );
  }

  /** Until the broker's ticker set stops changing: every registration of the flood applied. */
  async function settled(health: () => Promise<BrokerHealth>): Promise<number> {
    let last = -1;
    let same = 0;
    for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(400)) {
      const { tickers } = await health();
      same = tickers === last && tickers > 0 ? same + 1 : 0;
      last = tickers;
      if (same >= 3) return tickers;
    }
    throw new Error(`the broker's ticker set did not settle (last: ${last})`);
  }

  async function botRegisters(s: Awaited<ReturnType<typeof system>>, ticker: string): Promise<void> {
    await s.bus.publish(BrokerRegistration, { action: 'subscribe', ticker, client_id: 'bot-real', ttl_seconds: 60 });
    await waitFor(async () => (await s.health()).ticker_list.includes(ticker), `the broker streaming the bot's ${ticker}`, 10_000).catch((error: unknown) => {
      const refused = s.notices.filter((n) => n.client_id === 'bot-real');
      throw new Error(`${String(error)}; notices to the bot: ${JSON.stringify(refused)}`);
    });
    assert.deepEqual(s.notices.filter((n) => n.client_id === 'bot-real'), [], 'no refusal for the bot');
  }

  it('with default limits: the flooding connections get TB_ERR_ROOM_LIMIT, the gateway stays within its rooms, and a bot still registers', async () => {
    const s = await system([]);
    const replies = await flood(s.wsUrl);
    let opened = 0;
    for (const [c, got] of replies.entries()) {
      const ok = got.find((m) => m.type === 'ok');
      assert.ok(ok, `connection ${c}: an ok reply, not ${JSON.stringify(got.filter((m) => m.type === 'error' && m.key === undefined))}`);
      opened += ok.keys?.length ?? 0;
      const limited = got.filter((m) => m.type === 'error' && m.code === 'TB_ERR_ROOM_LIMIT');
      assert.ok(limited.length >= SYMBOLS - 100, `connection ${c}: ${limited.length} symbols refused with TB_ERR_ROOM_LIMIT`);
      assert.equal(limited.length + (ok.keys?.length ?? 0), SYMBOLS, `connection ${c}: every symbol is opened or refused`);
    }
    assert.ok(opened <= 500, `${opened} rooms opened in all, within --max-rooms`);
    const tickers = await settled(s.health);
    assert.ok(tickers <= 500, `the broker streams ${tickers} tickers for the gateway`);
    await botRegisters(s, 'AABOT');
  });

  it("with the gateway's limits raised past the broker's: the broker keeps its share for bots", async () => {
    const s = await system(['--max-rooms', '5000', '--max-rooms-per-connection', '1000']);
    const replies = await flood(s.wsUrl);
    for (const got of replies) assert.ok(got.some((m) => m.type === 'ok'), 'every connection was answered');
    const tickers = await settled(s.health);
    // The gateway holds 1,200 rooms; the broker took at most its gateway share of them.
    assert.ok(tickers <= 500, `the broker streams ${tickers} tickers for gateways alone (at most half of 1000)`);
    assert.ok(s.notices.some((n) => n.code === 'TB_BROKER_TICKER_LIMIT' && n.client_id?.startsWith('gateway-')), "the broker told the gateway it was over its share");
    await botRegisters(s, 'AABOT');
  });
});
