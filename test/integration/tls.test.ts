// tickbus over TLS to a real redis-server (--tls-port) on certificates made for the run: a
// private CA given by option or environment, mutual TLS, the server name; and, when a
// certificate does not fit, an error at once that names the problem and the setting to fix.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { BusError, ConfigError, TickerUpdates, createBus, resolveRedisConfig } from '../../src/index.ts';
import { RedisConnection } from '../../src/seed/index.ts';
import { makeCertificates, startTlsRedis, type TestCertificates, type TlsRedisServer } from '../harness/tls.ts';
import { CliProcess, runCli } from '../harness/cli.ts';
import { Inbox, waitFor } from '../harness/wait.ts';
import { silentLogger } from '../harness/quiet.ts';

const price = (ticker: string, p: number) => ({ type: 'price' as const, timestamp: new Date().toISOString(), price: p, volume: 1, symbol: ticker });

/** The environment a tickbus process needs for this server: what an operator would set. */
function tlsEnv(server: TlsRedisServer, certs: TestCertificates, client = true): NodeJS.ProcessEnv {
  return {
    REDIS_URL: server.tlsUrl,
    TICKBUS_REDIS_TLS_CA_FILE: certs.caFile,
    ...(client ? { TICKBUS_REDIS_TLS_CERT_FILE: certs.clientCertFile, TICKBUS_REDIS_TLS_KEY_FILE: certs.clientKeyFile } : {}),
  };
}

async function connectError(redis: Parameters<typeof createBus>[0]): Promise<BusError> {
  const bus = createBus({ ...redis, logger: silentLogger, connectTimeoutMs: 10_000 });
  const started = Date.now();
  try {
    await bus.connect();
  } catch (error) {
    assert.ok(error instanceof BusError, String(error));
    assert.ok(Date.now() - started < 5_000, 'refused at once, not after the connect timeout');
    return error;
  } finally {
    await bus.close();
  }
  throw new Error('connected, but should not have');
}

describe('TLS', () => {
  let certs: TestCertificates;
  let server: TlsRedisServer;
  let mutual: TlsRedisServer;

  before(async () => {
    certs = makeCertificates();
    [server, mutual] = await Promise.all([startTlsRedis(certs, { mutual: false }), startTlsRedis(certs, { mutual: true })]);
  });
  after(async () => {
    await Promise.all([server?.stop(), mutual?.stop()]);
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  describe('settings, checked at start-up', () => {
    it('reads the CA, the client certificate and key, and the server name, from options or the environment (options win)', () => {
      const fromEnv = resolveRedisConfig({}, { REDIS_URL: server.tlsUrl, TICKBUS_REDIS_TLS_CA_FILE: certs.caFile, TICKBUS_REDIS_TLS_CERT_FILE: certs.clientCertFile, TICKBUS_REDIS_TLS_KEY_FILE: certs.clientKeyFile, TICKBUS_REDIS_TLS_SERVER_NAME: 'redis.test' });
      assert.equal(fromEnv.tls, true);
      assert.equal(fromEnv.tlsOptions?.caFile, certs.caFile);
      assert.match(fromEnv.tlsOptions?.ca ?? '', /BEGIN CERTIFICATE/);
      assert.match(fromEnv.tlsOptions?.key ?? '', /PRIVATE KEY/);
      assert.equal(fromEnv.tlsOptions?.servername, 'redis.test');
      const fromCode = resolveRedisConfig({ url: server.url, tls: { caFile: certs.otherCaFile } }, { TICKBUS_REDIS_TLS_CA_FILE: certs.caFile });
      assert.equal(fromCode.tls, true, 'settings switch TLS on, like tls: true');
      assert.equal(fromCode.tlsOptions?.caFile, certs.otherCaFile, 'the option wins over the environment');
      assert.equal(resolveRedisConfig({ url: server.tlsUrl }, {}).tlsOptions, undefined, "none given: Node's defaults");
    });

    it('refuses, naming the setting, a missing file, a file with no PEM, a certificate without its key, a key of another certificate, settings without TLS', () => {
      const env = { REDIS_URL: server.tlsUrl };
      assert.throws(() => resolveRedisConfig({}, { ...env, TICKBUS_REDIS_TLS_CA_FILE: join(certs.dir, 'nope.crt') }), (e: unknown) => e instanceof ConfigError && /TICKBUS_REDIS_TLS_CA_FILE \(option tls\.caFile\) ".*nope\.crt": cannot read it \(no such file\)/.test(e.message));
      const junk = join(certs.dir, 'junk.pem');
      writeFileSync(junk, 'not a certificate\n');
      assert.throws(() => resolveRedisConfig({ tls: { caFile: junk } }, env), /TICKBUS_REDIS_TLS_CA_FILE \(option tls\.caFile\) ".*junk\.pem" holds no PEM certificate/);
      assert.throws(() => resolveRedisConfig({ tls: { keyFile: certs.clientCertFile, certFile: certs.clientCertFile } }, env), /TICKBUS_REDIS_TLS_KEY_FILE \(option tls\.keyFile\) ".*client\.crt" holds no PEM private key/);
      assert.throws(() => resolveRedisConfig({ tls: { certFile: certs.clientCertFile } }, env), /Mutual TLS needs both the client certificate and its key: TICKBUS_REDIS_TLS_CERT_FILE \(option tls\.certFile\) is set, TICKBUS_REDIS_TLS_KEY_FILE \(option tls\.keyFile\) is not/);
      assert.throws(() => resolveRedisConfig({ tls: { certFile: certs.clientCertFile, keyFile: certs.otherClientKeyFile } }, env), /The client certificate .*client\.crt" and the key .*other-client\.key" do not belong together/);
      assert.throws(() => resolveRedisConfig({ url: server.url }, { TICKBUS_REDIS_TLS_CA_FILE: certs.caFile }), /TLS settings are given \(TICKBUS_REDIS_TLS_CA_FILE \(option tls\.caFile\)\) but the Redis connection is not TLS: use a rediss:\/\/ URL/);
    });
  });

  describe('connection problems, named at once', () => {
    it('a private CA not given: says to set TICKBUS_REDIS_TLS_CA_FILE (not "start redis-server there")', async () => {
      const error = await connectError({ redis: { url: server.tlsUrl } });
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /over TLS: the server's certificate is signed by a CA this client does not trust \(self-signed certificate in certificate chain\): set TICKBUS_REDIS_TLS_CA_FILE \(option tls\.caFile\) to that CA's PEM file/);
      assert.doesNotMatch(error.message, /Start redis-server/);
    });

    it('the wrong CA: names the file given', async () => {
      const error = await connectError({ redis: { url: server.tlsUrl, tls: { caFile: certs.otherCaFile } } });
      assert.match(error.message, /the server's certificate is not signed by the CA in TICKBUS_REDIS_TLS_CA_FILE \(option tls\.caFile\) ".*other-ca\.crt"/);
    });

    it('a certificate made for another name: says to set the server name, and the right one connects', async () => {
      const error = await connectError({ redis: { url: server.tlsUrl, tls: { caFile: certs.caFile, serverName: 'elsewhere.test' } } });
      assert.match(error.message, /the server's certificate is not made for "127\.0\.0\.1" \(.*\): connect by a name it lists, or set TICKBUS_REDIS_TLS_SERVER_NAME \(option tls\.serverName\)/);
      const bus = createBus({ redis: { url: server.tlsUrl, tls: { caFile: certs.caFile, serverName: 'redis.test' } }, logger: silentLogger });
      try {
        await bus.connect();
        assert.equal(bus.publisher.isConnected, true);
      } finally {
        await bus.close();
      }
    });

    it('mutual TLS without a client certificate: says to set the certificate and key', async () => {
      const error = await connectError({ redis: { url: mutual.tlsUrl, tls: { caFile: certs.caFile } } });
      assert.match(error.message, /client certificate/);
      assert.match(error.message, /TICKBUS_REDIS_TLS_CERT_FILE \(option tls\.certFile\) and TICKBUS_REDIS_TLS_KEY_FILE \(option tls\.keyFile\)/);
    });

    it("mutual TLS with a certificate the server's CA did not sign: names the certificate", async () => {
      const error = await connectError({ redis: { url: mutual.tlsUrl, tls: { caFile: certs.caFile, certFile: certs.otherClientCertFile, keyFile: certs.otherClientKeyFile } } });
      assert.match(error.message, /the server does not accept the client certificate TICKBUS_REDIS_TLS_CERT_FILE \(option tls\.certFile\) ".*other-client\.crt"/);
    });

    it('rediss:// to a plain port (which never answers a TLS handshake): the timeout says to use redis:// or the tls-port', async () => {
      const bus = createBus({ redis: { url: `rediss://127.0.0.1:${server.port}`, tls: { caFile: certs.caFile } }, logger: silentLogger, connectTimeoutMs: 1_000 });
      try {
        await assert.rejects(bus.connect(), /within 1000 ms \(no answer\)\. If Redis runs there without TLS on this port, use redis:\/\/ \(or the port of its tls-port\)/);
      } finally {
        await bus.close();
      }
    });
  });

  describe('the bus, broker, gateway and CLI over mutual TLS', () => {
    it('the bus publishes and subscribes, with history', async () => {
      const bus = createBus({ redis: { url: mutual.tlsUrl, tls: { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile } }, logger: silentLogger });
      try {
        const got = new Inbox<number>();
        await bus.subscribe(TickerUpdates.of({ ticker: 'TLS' }), (u) => got.push(u.type === 'price' ? (u.price ?? -1) : -1));
        const receipt = await bus.publish(TickerUpdates.of({ ticker: 'TLS' }), price('TLS', 42));
        assert.equal(receipt.receivers, 1);
        assert.ok(receipt.position, 'a stream position from the history script');
        await waitFor(() => got.items.includes(42), 'the update over TLS');
      } finally {
        await bus.close();
      }
    });

    it('a broker, a gateway and the CLI, configured by the environment, stream a ticker to a WebSocket client', async () => {
      const env = tlsEnv(mutual, certs);
      const broker = new CliProcess(['broker', '--port', '0', '--rate', '50'], env);
      const gateway = new CliProcess(['gateway', '--port', '0'], env);
      try {
        await broker.waitFor(/metrics (http:\/\/\S+)\/metrics/);
        const [, wsUrl] = await gateway.waitFor(/websocket (ws:\/\/\S+)/);
        const ws = new WebSocket(wsUrl as string);
        const frames = new Inbox<{ type: string; updates?: Array<{ symbol?: string; data: { type: string } }> }>();
        ws.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString('utf8')) as { type: string }));
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        ws.send(JSON.stringify({ op: 'subscribe', symbols: ['TLSB'] }));
        // The gateway registers TLSB with the broker in its name; the CLI adds another lease.
        const reg = await runCli(['register', 'TLSB', '--client-id', 'tls-cli'], env);
        assert.equal(reg.code, 0, reg.stderr);
        await waitFor(() => frames.items.some((f) => f.type === 'batch' && (f.updates ?? []).some((u) => u.symbol === 'TLSB' && u.data.type === 'price')), 'prices of TLSB from the broker through the gateway', 20_000);
        ws.close();
        const health = await runCli(['health', '--json'], env);
        assert.equal(health.code, 0, health.stderr);
        assert.match(health.stdout, /"service":\s*"broker"/);
        const pub = await runCli(['publish', 'TICKER_UPDATES_TLSC', JSON.stringify(price('TLSC', 1))], env);
        assert.equal(pub.code, 0, pub.stderr);
      } finally {
        await Promise.all([broker.stop(), gateway.stop()]);
      }
    });

    it("seed 001's RedisConnection connects over mutual TLS, and names the missing client certificate", async () => {
      const tls = { caFile: certs.caFile, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile };
      const conn = new RedisConnection({ url: mutual.tlsUrl, tls, logger: silentLogger });
      try {
        await conn.connect();
        assert.equal(await conn.connection.ping(), 'PONG');
      } finally {
        await conn.disconnect();
      }
      const bare = new RedisConnection({ url: mutual.tlsUrl, tls: { caFile: certs.caFile }, logger: silentLogger });
      await assert.rejects(bare.connect(), (e: unknown) => e instanceof ConfigError && /requires a client certificate \(mutual TLS\)/.test(e.message));
      await bare.disconnect();
    });

    it('the CLI without the client certificate exits 2 with what to set', async () => {
      const r = await runCli(['publish', 'TICKER_UPDATES_TLSD', JSON.stringify(price('TLSD', 1))], tlsEnv(mutual, certs, false));
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /requires a client certificate \(mutual TLS\).*set TICKBUS_REDIS_TLS_CERT_FILE/);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    });
  });
});
