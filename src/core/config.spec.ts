import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DEFAULT_REDIS_URL,
  backoffDelay,
  parseRedisUrl,
  resolveLimits,
  resolveReconnect,
  resolveRedisConfig,
  resolveSender,
  resolveLogLevel,
  redisUrlFromEnv,
  resolveJwtSecret,
  environment,
  LOG_LEVELS,
} from './config.ts';
import { DEFAULTS } from './defaults.ts';
import { ConfigError, ErrorCode } from './errors.ts';

/** Asserts that `fn` throws a ConfigError whose message matches every pattern; returns the message. */
function configError(fn: () => unknown, ...patterns: RegExp[]): string {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError, got ${String(caught)}`);
  assert.equal(caught.code, ErrorCode.Config);
  for (const p of patterns) assert.match(caught.message, p);
  return caught.message;
}

describe('parseRedisUrl', () => {
  it('reads host, port and db', () => {
    const c = parseRedisUrl('redis://localhost:6380/2', 'test');
    assert.equal(c.host, 'localhost');
    assert.equal(c.port, 6380);
    assert.equal(c.db, 2);
    assert.equal(c.tls, false);
    assert.equal(c.username, undefined);
    assert.equal(c.password, undefined);
    assert.equal(c.url, 'redis://localhost:6380/2');
    assert.equal(c.display, 'redis://localhost:6380/2');
    assert.ok(Object.isFrozen(c));
  });

  it('defaults the port to 6379 and the db to 0', () => {
    for (const text of ['redis://cache.internal', 'redis://cache.internal/', 'redis://cache.internal:6379']) {
      const c = parseRedisUrl(text, 'test');
      assert.equal(c.port, 6379, text);
      assert.equal(c.db, 0, text);
      assert.equal(c.url, 'redis://cache.internal:6379/0', text);
    }
  });

  it('turns on TLS for rediss://', () => {
    const c = parseRedisUrl('rediss://secure.example.com/1', 'test');
    assert.equal(c.tls, true);
    assert.equal(c.port, 6379);
    assert.equal(c.db, 1);
    assert.equal(c.url, 'rediss://secure.example.com:6379/1');
  });

  it('reads ACL credentials and masks the password in display', () => {
    const c = parseRedisUrl('redis://alice:s3cr%40t@db.example.com:6390/3', 'test');
    assert.equal(c.username, 'alice');
    assert.equal(c.password, 's3cr@t');
    assert.equal(c.url, 'redis://alice:s3cr%40t@db.example.com:6390/3');
    assert.equal(c.display, 'redis://alice:***@db.example.com:6390/3');
    assert.ok(!c.display.includes('s3cr'));
  });

  it('reads a password without a user (legacy AUTH)', () => {
    const c = parseRedisUrl('redis://:hunter2@h', 'test');
    assert.equal(c.username, undefined);
    assert.equal(c.password, 'hunter2');
    assert.equal(c.url, 'redis://:hunter2@h:6379/0');
    assert.equal(c.display, 'redis://:***@h:6379/0');
  });

  it('reads a user without a password', () => {
    const c = parseRedisUrl('redis://bot@h:7000', 'test');
    assert.equal(c.username, 'bot');
    assert.equal(c.password, undefined);
    assert.equal(c.display, 'redis://bot@h:7000/0');
  });

  it('reads IPv6 hosts and writes them back in brackets', () => {
    const c = parseRedisUrl('redis://[::1]:6390/4', 'test');
    assert.equal(c.host, '::1');
    assert.equal(c.port, 6390);
    assert.equal(c.db, 4);
    assert.equal(c.url, 'redis://[::1]:6390/4');
    assert.deepEqual(parseRedisUrl(c.url, 'test'), c);
  });

  it('round-trips any user name and password through url', () => {
    const secret = fc.oneof(fc.string({ minLength: 1 }), fc.string({ unit: 'grapheme', minLength: 1 }));
    fc.assert(
      fc.property(secret, secret, fc.integer({ min: 1, max: 65535 }), fc.nat(15), (username, password, port, db) => {
        const c = resolveRedisConfig({ host: 'h', port, db, username, password }, {});
        const back = parseRedisUrl(c.url, 'test');
        assert.equal(back.username, username);
        assert.equal(back.password, password);
        assert.equal(back.port, port);
        assert.equal(back.db, db);
        assert.equal(c.display, `redis://${encodeURIComponent(username)}:***@h:${port}/${db}`);
      }),
      { numRuns: 300 },
    );
  });

  it('explains a wrong scheme', () => {
    configError(() => parseRedisUrl('http://localhost:6379', 'REDIS_URL'), /^REDIS_URL/, /redis:\/\//, /rediss:\/\//, /"http:\/\/"/);
    configError(() => parseRedisUrl('localhost:6379', 'REDIS_URL'), /redis:\/\//);
  });

  it('explains a bad port', () => {
    configError(() => parseRedisUrl('redis://h:0', 'REDIS_URL'), /port 0/, /between 1 and 65535/, /REDIS_URL/);
    configError(() => parseRedisUrl('redis://h:99999', 'REDIS_URL'), /not a URL/, /redis:\/\/localhost:6379/);
  });

  it('explains a non-numeric db', () => {
    for (const text of ['redis://h:6379/abc', 'redis://h/1/2', 'redis://h/-1', 'redis://h/1.5']) {
      configError(() => parseRedisUrl(text, 'REDIS_URL'), /^REDIS_URL/, /is not a number/, /redis:\/\/localhost:6379\/0/);
    }
  });

  it('explains garbage', () => {
    for (const text of ['garbage', '', 'redis://', '://h', 'redis://ho st:6379']) {
      configError(() => parseRedisUrl(text, 'REDIS_URL'), /REDIS_URL/, /redis:\/\//);
    }
  });

  it('keeps control characters out of error messages', () => {
    const message = configError(() => parseRedisUrl('bad\r\nurl', 'REDIS_URL'), /not a URL/);
    assert.doesNotMatch(message, /[\r\n]/);
  });
});

describe('resolveRedisConfig', () => {
  it('uses the default URL when nothing is given', () => {
    const c = resolveRedisConfig({}, {});
    assert.equal(DEFAULT_REDIS_URL, 'redis://127.0.0.1:6379');
    assert.equal(c.host, '127.0.0.1');
    assert.equal(c.port, 6379);
    assert.equal(c.db, 0);
    assert.equal(c.tls, false);
    assert.equal(c.url, 'redis://127.0.0.1:6379/0');
  });

  it('reads REDIS_URL from the env argument', () => {
    const c = resolveRedisConfig({}, { REDIS_URL: 'rediss://u:p@envhost:7000/4' });
    assert.equal(c.host, 'envhost');
    assert.equal(c.port, 7000);
    assert.equal(c.db, 4);
    assert.equal(c.tls, true);
    assert.equal(c.username, 'u');
    assert.equal(c.password, 'p');
    assert.equal(c.display, 'rediss://u:***@envhost:7000/4');
  });

  it('ignores an empty REDIS_URL', () => {
    assert.equal(resolveRedisConfig({}, { REDIS_URL: '' }).url, 'redis://127.0.0.1:6379/0');
  });

  it('lets explicit options win over REDIS_URL', () => {
    const env = { REDIS_URL: 'redis://u:p@envhost:7000/4' };
    assert.equal(resolveRedisConfig({ url: 'redis://opt:1234/1' }, env).url, 'redis://opt:1234/1');
    // An explicit host or port means REDIS_URL is not consulted at all.
    const byHost = resolveRedisConfig({ host: 'other' }, env);
    assert.equal(byHost.host, 'other');
    assert.equal(byHost.port, 6379);
    assert.equal(byHost.password, undefined);
    assert.equal(resolveRedisConfig({ port: 6400 }, env).host, '127.0.0.1');
    // db, credentials and tls refine whichever URL was chosen.
    const refined = resolveRedisConfig({ db: 9, username: 'x', password: 'y', tls: true }, env);
    assert.equal(refined.host, 'envhost');
    assert.equal(refined.port, 7000);
    assert.equal(refined.db, 9);
    assert.equal(refined.username, 'x');
    assert.equal(refined.password, 'y');
    assert.equal(refined.url, 'rediss://x:y@envhost:7000/9');
  });

  it('lets host, port and db options override the url option', () => {
    const c = resolveRedisConfig({ url: 'redis://a:1111/1', host: 'b', port: 2222, db: 2 }, {});
    assert.equal(c.url, 'redis://b:2222/2');
  });

  it('names the source of a bad URL', () => {
    configError(() => resolveRedisConfig({}, { REDIS_URL: 'nope' }), /^REDIS_URL "nope" is not a URL/);
    configError(() => resolveRedisConfig({ url: 'nope' }, {}), /^the "url" option/);
  });

  it('never prints a password in an error message', () => {
    for (const url of ['redis://user:secret@host:99999', 'redis://user:secret@:6379', 'redis://user:secret@ho st:6379']) {
      assert.throws(
        () => parseRedisUrl(url, 'REDIS_URL'),
        (e: unknown) => e instanceof ConfigError && !e.message.includes('secret') && e.message.includes('***'),
        url,
      );
    }
  });

  it('validates host, port and db options', () => {
    configError(() => resolveRedisConfig({ host: '' }, {}), /host is empty/, /REDIS_URL/);
    configError(() => resolveRedisConfig({ port: 0 }, {}), /port 0 from the "port" option/);
    configError(() => resolveRedisConfig({ port: 65536 }, {}), /between 1 and 65535/);
    configError(() => resolveRedisConfig({ port: 6379.5 }, {}), /between 1 and 65535/);
    configError(() => resolveRedisConfig({ port: Number.NaN }, {}), /NaN/);
    configError(() => resolveRedisConfig({ db: -1 }, {}), /db -1 is not a non-negative integer/);
    configError(() => resolveRedisConfig({ db: 1.5 }, {}), /db 1.5/);
  });
});

describe('resolveLimits', () => {
  it('has the documented defaults', () => {
    const l = resolveLimits();
    assert.deepEqual(l, { maxMessageBytes: 1024 * 1024, maxPendingPerChannel: 10_000 });
    assert.equal(l.maxMessageBytes, DEFAULTS.maxMessageBytes);
    assert.ok(Object.isFrozen(l));
  });

  it('accepts positive integers up to 512 MiB', () => {
    assert.deepEqual(resolveLimits({ maxMessageBytes: 1, maxPendingPerChannel: 1 }), { maxMessageBytes: 1, maxPendingPerChannel: 1 });
    assert.equal(resolveLimits({ maxMessageBytes: 512 * 1024 * 1024 }).maxMessageBytes, 512 * 1024 * 1024);
  });

  it('rejects what is not a positive integer, naming the option', () => {
    for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      configError(() => resolveLimits({ maxMessageBytes: bad }), /^maxMessageBytes must be a positive integer/);
      configError(() => resolveLimits({ maxPendingPerChannel: bad }), /^maxPendingPerChannel must be a positive integer/);
    }
    configError(() => resolveLimits({ maxMessageBytes: '10' as unknown as number }), /maxMessageBytes/);
  });

  it('rejects more than Redis accepts', () => {
    configError(() => resolveLimits({ maxMessageBytes: 512 * 1024 * 1024 + 1 }), /512 MiB/);
  });
});

describe('resolveReconnect', () => {
  it('has the documented defaults', () => {
    assert.deepEqual(resolveReconnect(), { baseMs: 50, maxMs: 5000 });
    assert.deepEqual(resolveReconnect({ baseMs: 100 }), { baseMs: 100, maxMs: 5000 });
    assert.deepEqual(resolveReconnect({ baseMs: 7, maxMs: 7 }), { baseMs: 7, maxMs: 7 });
  });

  it('rejects bad values, naming the option', () => {
    configError(() => resolveReconnect({ baseMs: 0 }), /^reconnect\.baseMs must be a positive integer, got 0/);
    configError(() => resolveReconnect({ maxMs: 2.5 }), /^reconnect\.maxMs/);
    configError(() => resolveReconnect({ baseMs: 100, maxMs: 50 }), /reconnect\.maxMs \(50\) is below reconnect\.baseMs \(100\)/);
    configError(() => resolveReconnect({ baseMs: 6000 }), /below/);
  });
});

describe('resolveSender', () => {
  it('prefers the option, then TICKBUS_SENDER, then the default', () => {
    assert.equal(resolveSender('svc', { TICKBUS_SENDER: 'env' }), 'svc');
    assert.equal(resolveSender(undefined, { TICKBUS_SENDER: 'env' }), 'env');
    assert.equal(resolveSender(undefined, {}), DEFAULTS.sender);
  });

  it('rejects empty and overlong names', () => {
    configError(() => resolveSender('', {}), /1 to 128 characters/);
    configError(() => resolveSender('x'.repeat(129), {}), /1 to 128 characters/);
    assert.equal(resolveSender('x'.repeat(128), {}).length, 128);
  });
});

describe('backoffDelay', () => {
  const reconnect = fc
    .tuple(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 100_000 }))
    .map(([baseMs, extra]) => ({ baseMs, maxMs: baseMs + extra }));
  const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });

  it('stays within [ceiling/2, ceiling] and never exceeds maxMs', () => {
    fc.assert(
      fc.property(fc.nat(1_000_000), reconnect, unit, (attempt, options, r) => {
        const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30));
        const delay = backoffDelay(attempt, options, () => r);
        assert.ok(Number.isInteger(delay), `delay ${delay} is an integer`);
        assert.ok(delay >= Math.floor(ceiling / 2), `delay ${delay} >= ${ceiling}/2`);
        assert.ok(delay <= ceiling, `delay ${delay} <= ${ceiling}`);
        assert.ok(delay <= options.maxMs, `delay ${delay} <= maxMs ${options.maxMs}`);
      }),
      { numRuns: 1000 },
    );
  });

  it('grows (never shrinks) with the attempt for the same random draw', () => {
    fc.assert(
      fc.property(fc.nat(64), reconnect, unit, (attempt, options, r) => {
        assert.ok(backoffDelay(attempt + 1, options, () => r) >= backoffDelay(attempt, options, () => r));
      }),
      { numRuns: 1000 },
    );
  });

  it('doubles until the ceiling, then stays there', () => {
    const options = { baseMs: 50, maxMs: 5000 };
    const low = [0, 1, 2, 3, 4, 5, 6, 7, 40].map((a) => backoffDelay(a, options, () => 0));
    assert.deepEqual(low, [25, 50, 100, 200, 400, 800, 1600, 2500, 2500]);
    const high = [0, 1, 7, 1e9].map((a) => backoffDelay(a, options, () => 0.999999));
    assert.deepEqual(high, [49, 99, 4999, 4999]);
  });

  it('uses Math.random by default', () => {
    const options = { baseMs: 100, maxMs: 100 };
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, options);
      assert.ok(d >= 50 && d <= 100, String(d));
      seen.add(d);
    }
    assert.ok(seen.size > 5, 'the delay is jittered');
  });
});

describe('Redis Cluster configuration', () => {
  it('reads the redis-cluster:// form: seed nodes, credentials, TLS', () => {
    const c = parseRedisUrl('redis-cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002', 'test');
    assert.deepEqual(c.cluster, [
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
    assert.equal(c.username, 'app');
    assert.equal(c.password, 's@cret');
    assert.equal(c.tls, false);
    assert.equal(c.url, 'redis-cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002');
    assert.equal(c.display, 'redis-cluster://app:***@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002');
    assert.equal(parseRedisUrl('rediss-cluster://h:7000', 'test').tls, true);
    // The URL a config prints reads back to the same config.
    assert.deepEqual(parseRedisUrl(c.url, 'again'), c);
  });

  it('takes seed nodes as an option, and REDIS_URL in the cluster form', () => {
    const c = resolveRedisConfig({ cluster: ['127.0.0.1:7000', 'redis://127.0.0.1:7001'], password: 'pw' }, {});
    assert.deepEqual(c.cluster, [
      { host: '127.0.0.1', port: 7000 },
      { host: '127.0.0.1', port: 7001 },
    ]);
    assert.equal(c.display, 'redis-cluster://:***@127.0.0.1:7000,127.0.0.1:7001');
    const fromEnv = resolveRedisConfig({}, { REDIS_URL: 'redis-cluster://a:7000,b:7001' });
    assert.equal(fromEnv.cluster?.length, 2);
    assert.equal(resolveRedisConfig({}, {}).cluster, undefined);
  });

  it('refuses what a cluster cannot be, saying what to write instead', () => {
    configError(() => parseRedisUrl('redis-cluster://a:7000/2', 'REDIS_URL'), /only database 0/);
    configError(() => parseRedisUrl('redis-cluster://a,b:7001', 'REDIS_URL'), /host:port/);
    configError(() => parseRedisUrl('redis-cluster://a:99999', 'REDIS_URL'), /port/);
    configError(() => resolveRedisConfig({ cluster: [] }, {}), /no seed nodes/);
    configError(() => resolveRedisConfig({ cluster: ['a:1'], url: 'redis://b' }, {}), /not both/);
    configError(() => resolveRedisConfig({ url: 'redis-cluster://a:7000', host: 'b' }, {}), /drop the host/);
  });
});

describe('resolveLogLevel', () => {
  it('takes TICKBUS_LOG_LEVEL, else the fallback given, else info', () => {
    assert.equal(resolveLogLevel(undefined, {}), 'info');
    assert.equal(resolveLogLevel('warn', {}), 'warn');
    assert.equal(resolveLogLevel('warn', { TICKBUS_LOG_LEVEL: 'debug' }), 'debug');
    for (const level of LOG_LEVELS) assert.equal(resolveLogLevel('info', { TICKBUS_LOG_LEVEL: level }), level);
  });

  it('refuses a level pino does not know, naming the ones it does', () => {
    for (const bad of ['verbose', 'INFO', '']) {
      assert.throws(
        () => resolveLogLevel('info', { TICKBUS_LOG_LEVEL: bad }),
        (e: unknown) => e instanceof ConfigError && e.code === ErrorCode.Config && /TICKBUS_LOG_LEVEL/.test(e.message) && /fatal, error, warn, info, debug, trace, silent/.test(e.message),
      );
    }
  });
});

describe('redisUrlFromEnv', () => {
  it('is REDIS_URL when set, undefined when unset or empty', () => {
    assert.equal(redisUrlFromEnv({ REDIS_URL: 'redis://h:1' }), 'redis://h:1');
    assert.equal(redisUrlFromEnv({}), undefined);
    assert.equal(redisUrlFromEnv({ REDIS_URL: '' }), undefined);
  });
});

describe('resolveJwtSecret', () => {
  it('is the variable named, from the environment given', () => {
    assert.equal(resolveJwtSecret('MY_SECRET', { MY_SECRET: 's'.repeat(32) }), 's'.repeat(32));
  });

  it('refuses a variable that is unset or empty, naming it', () => {
    for (const env of [{}, { MY_SECRET: '' }]) configError(() => resolveJwtSecret('MY_SECRET', env), /^--jwt-secret-env MY_SECRET: that environment variable is not set\.$/);
  });
});

describe('environment', () => {
  it('keeps just the names given that are set, frozen', () => {
    const env = environment(['A', 'B', 'C'], { A: '1', C: '', D: '4' });
    assert.deepEqual(env, { A: '1', C: '' });
    assert.ok(Object.isFrozen(env));
  });
});
