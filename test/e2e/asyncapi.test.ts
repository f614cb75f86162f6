// `tickbus schema export --format asyncapi`, read back by the official AsyncAPI parser
// (@asyncapi/parser, with its Spectral rules): no error, no warning, and every catalog
// channel in it as the bus defines it: address, parameters with their allow-lists, the
// wire format of its message and its delivery.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Parser, DiagnosticSeverity, type AsyncAPIDocumentInterface } from '@asyncapi/parser';
import { runCli } from '../harness/cli.ts';
import { SHIPPED_CATALOGS } from '../../src/catalogs/index.ts';
import { deliveryCatalog } from '../fixtures/delivery-channels.ts';
import type { Catalog, ChannelParam } from '../../src/index.ts';

type Json = Record<string, unknown>;

/** Parses with the official parser; any error or warning fails, with the parser's own words. */
async function parseStrict(text: string): Promise<AsyncAPIDocumentInterface> {
  const { document, diagnostics } = await new Parser().parse(text);
  const errorOrWarning = new Set<number>([DiagnosticSeverity.Error, DiagnosticSeverity.Warning]);
  const serious = diagnostics.filter((d) => errorOrWarning.has(d.severity));
  assert.deepEqual(
    serious.map((d) => `${d.code} at ${d.path.join('.')}: ${d.message}`),
    [],
    'the AsyncAPI parser reports no error and no warning',
  );
  assert.ok(document, 'the parser returned a document');
  return document;
}

async function exportAsyncApi(args: string[] = []): Promise<{ text: string; doc: Json }> {
  const out = join(mkdtempSync(join(tmpdir(), 'tickbus-asyncapi-')), 'nested', 'tickbus.asyncapi.json');
  const r = await runCli(['schema', 'export', '--format', 'asyncapi', '--out', out, ...args]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /wrote .*tickbus\.asyncapi\.json/);
  const text = readFileSync(out, 'utf8');
  return { text, doc: JSON.parse(text) as Json };
}

/** Every channel of the catalogs is in the document as the bus defines it. */
function assertCatalogsIn(document: AsyncAPIDocumentInterface, raw: Json, catalogs: readonly Catalog[]): void {
  const byAddress = new Map(document.channels().all().map((c) => [c.address(), c]));
  const rawChannels = raw.channels as Record<string, Json>;
  const rawMessages = (raw.components as { messages: Record<string, Json> }).messages;
  let count = 0;
  for (const catalog of catalogs) {
    for (const ch of catalog.list()) {
      count++;
      const parsed = byAddress.get(ch.template);
      assert.ok(parsed, `channel ${ch.template} (${catalog.name}) is in the document`);
      assert.deepEqual(parsed.parameters().all().map((p) => p.id()).sort(), [...ch.paramNames].sort(), `${ch.template}: one parameter per {param}`);
      const rawChannel = rawChannels[parsed.id()] as Json;
      for (const name of ch.paramNames as readonly string[]) {
        const rule = (ch.params as Record<string, ChannelParam>)[name] as ChannelParam;
        const p = (rawChannel.parameters as Record<string, Json>)[name] as Json;
        assert.equal(p['x-tickbus-pattern'], rule.allow.source, `${ch.template} {${name}}: the allow-list`);
        assert.equal(p['x-tickbus-max-length'], rule.maxLength);
        assert.ok(new RegExp(p['x-tickbus-pattern']).test('AAPL'), 'the allow-list is a usable regular expression');
      }
      const delivery = rawChannel['x-tickbus-delivery'] as Json;
      assert.equal(delivery.mode, ch.delivery === 'durable' ? 'durable' : ch.hasHistory ? 'history' : 'pubsub', `${ch.template}: delivery`);
      assert.equal(rawChannel['x-tickbus-pattern'], ch.pattern());
      const messages = parsed.messages().all();
      assert.equal(messages.length, 1, `${ch.template}: one message`);
      const message = messages[0]!;
      assert.equal(message.contentType(), 'application/json');
      const payload = rawMessages[message.id()]?.payload as Json;
      if (ch.wire === 'envelope') {
        assert.deepEqual(payload.required, ['data', 'timestamp', 'sender'], `${ch.template}: the envelope`);
        assert.ok((payload.properties as Json).data, `${ch.template}: the data schema inside the envelope`);
        assert.equal('position' in (payload.properties as Json), ch.hasHistory, `${ch.template}: position only with history`);
      } else {
        assert.equal(payload.required && (payload.required as string[]).includes('sender'), false, `${ch.template}: bare, no envelope`);
      }
      // Both directions: a sender publishes (or appends), a receiver subscribes (or consumes).
      const actions = parsed.operations().all().map((o) => o.action()).sort();
      assert.deepEqual(actions, ['receive', 'send'], `${ch.template}: send and receive operations`);
    }
  }
  assert.equal(document.channels().all().length, count, 'no channel the catalogs do not define');
  const servers = document.servers().all();
  assert.deepEqual(servers.map((s) => s.protocol()), ['redis']);
}

describe('AsyncAPI export', () => {
  it('documents every shipped catalog channel, and the official parser accepts it with no error or warning', async () => {
    const { text, doc } = await exportAsyncApi();
    assert.equal(doc.asyncapi, '3.0.0');
    const document = await parseStrict(text);
    assertCatalogsIn(document, doc, SHIPPED_CATALOGS);
    // The ticker channel: a template whose parameter is the ticker allow-list, with history.
    const ticker = document.channels().all().find((c) => c.address() === 'TICKER_UPDATES_{ticker}');
    assert.ok(ticker);
    assert.match(ticker.description() ?? '', /history/);
    const backtests = (doc.channels as Record<string, Json>)['tickstock_jobs_backtest'] as Json;
    assert.equal((backtests['x-tickbus-delivery'] as Json).streamKey, 'tickbus:{tickstock.jobs.backtest}:stream');
  });

  it('documents the catalogs a user passes (--catalog), durable and template channels included', async () => {
    const { text, doc } = await exportAsyncApi(['--catalog', new URL('../fixtures/delivery-channels.ts', import.meta.url).pathname, '--server', 'redis.internal:6380']);
    const document = await parseStrict(text);
    assertCatalogsIn(document, doc, [deliveryCatalog]);
    assert.equal(document.servers().all()[0]?.host(), 'redis.internal:6380');
    const work = (doc.channels as Record<string, Json>)['TEST_WORK_queue'] as Json;
    assert.deepEqual(work['x-tickbus-delivery'], { mode: 'durable', sharded: false, retention: { maxLen: 1_000_000 }, streamKey: 'tickbus:{TEST_WORK_<queue>}:stream', deadLetterKey: 'tickbus:{TEST_WORK_<queue>}:dead' });
  });

  it('the strict parse fails on a document the parser finds fault with', async () => {
    const { doc } = await exportAsyncApi();
    // A channel whose message points nowhere: the check above must not let it through.
    const first = Object.values(doc.channels as Record<string, Json>)[0] as Json;
    first.messages = { broken: { $ref: '#/components/messages/does_not_exist' } };
    await assert.rejects(parseStrict(JSON.stringify(doc)), /AssertionError|parser reports no error/);
  });

  it('refuses a --catalog module that exports no catalog (exit 2)', async () => {
    const r = await runCli(['schema', 'export', '--format', 'asyncapi', '--catalog', new URL('../harness/wait.ts', import.meta.url).pathname]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /exports no catalog/);
  });
});
