// The one configuration loader: explicit options first, then the environment, then
// DEFAULTS. Everything is validated at start-up with a message that says what to fix,
// then frozen.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { ConfigError, preview } from './errors.ts';
import { DEFAULTS } from './defaults.ts';

/**
 * TLS settings for Redis beyond Node's defaults: a private CA, a client certificate for
 * mutual TLS, the name the server's certificate was made for. Each file is read and checked
 * at start-up. Each field also comes from the environment (the variable named beside it);
 * the option wins.
 */
export interface RedisTlsOptions {
  /** PEM file of the CA(s) that signed the server's certificate, trusted besides Node's own. `TICKBUS_REDIS_TLS_CA_FILE` */
  caFile?: string;
  /** PEM file of the client certificate, for servers that require one (mutual TLS). `TICKBUS_REDIS_TLS_CERT_FILE` */
  certFile?: string;
  /** PEM file of the client certificate's private key. `TICKBUS_REDIS_TLS_KEY_FILE` */
  keyFile?: string;
  /** The host name to check the server's certificate against (and to send as SNI), when it is not the host connected to. `TICKBUS_REDIS_TLS_SERVER_NAME` */
  serverName?: string;
}

/** What the Redis client is given: PEM contents read from the files, which are kept for messages. */
export interface ResolvedTls {
  readonly ca: string | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly servername: string | undefined;
  readonly caFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
}

/** The option and the environment variable of each TLS setting, for messages. */
export const TLS_SETTINGS = Object.freeze({
  caFile: { option: 'tls.caFile', env: 'TICKBUS_REDIS_TLS_CA_FILE' },
  certFile: { option: 'tls.certFile', env: 'TICKBUS_REDIS_TLS_CERT_FILE' },
  keyFile: { option: 'tls.keyFile', env: 'TICKBUS_REDIS_TLS_KEY_FILE' },
  serverName: { option: 'tls.serverName', env: 'TICKBUS_REDIS_TLS_SERVER_NAME' },
} as const);

type TlsField = keyof typeof TLS_SETTINGS;

function named(field: TlsField): string {
  return `${TLS_SETTINGS[field].env} (option ${TLS_SETTINGS[field].option})`;
}

export interface RedisOptions {
  /**
   * `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. Wins over host/port.
   * A Redis Cluster: `redis-cluster://[user:password@]host:port,host:port,…` (or
   * `rediss-cluster://`), listing seed nodes; the rest of the cluster is discovered.
   */
  url?: string;
  /**
   * Redis Cluster seed nodes, as `host:port` or `redis://host:port`; the same as the
   * `redis-cluster://` URL form. Credentials and TLS come from the other options.
   */
  cluster?: readonly string[];
  host?: string;
  port?: number;
  db?: number;
  username?: string;
  password?: string;
  /**
   * TLS on (`true`), off (`false`), or on with settings (a private CA, mutual TLS, the server
   * name). @default false (true for rediss:// URLs)
   */
  tls?: boolean | RedisTlsOptions;
}

/** One seed node of a Redis Cluster. */
export interface ClusterSeed {
  readonly host: string;
  readonly port: number;
}

export interface RedisConfig {
  /** The seed nodes when this is a Redis Cluster; undefined for one Redis. */
  readonly cluster: readonly ClusterSeed[] | undefined;
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
  /** TLS settings beyond Node's defaults, when any is given (only with `tls`). */
  readonly tlsOptions: ResolvedTls | undefined;
  /** The connection URL, credentials included. */
  readonly url: string;
  /** The connection URL with the password masked, for logs and error messages. */
  readonly display: string;
}

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export function resolveRedisConfig(options: RedisOptions = {}, env: NodeJS.ProcessEnv = process.env): RedisConfig {
  const config = resolveRedisAddress(options, env);
  const tlsOptions = resolveTls(typeof options.tls === 'object' ? options.tls : {}, env, config.tls);
  return tlsOptions ? Object.freeze({ ...config, tlsOptions }) : config;
}

/** Reads one PEM file of a TLS setting; the message names the setting and the problem. */
function readPem(field: TlsField, file: string, expect: RegExp, what: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'a directory, not a file' : (error as Error).message;
    throw new ConfigError(`${named(field)} "${preview(file)}": cannot read it (${why}).`, { cause: error });
  }
  if (!expect.test(text)) throw new ConfigError(`${named(field)} "${preview(file)}" holds no PEM ${what} (a "-----BEGIN …-----" block).`);
  return text;
}

/** The TLS settings from the options, else the environment; checked together, so a bad pair fails here and not at the first connection. */
function resolveTls(options: RedisTlsOptions, env: NodeJS.ProcessEnv, tls: boolean): ResolvedTls | undefined {
  const pick = (field: TlsField): string | undefined => {
    const value = options[field] ?? env[TLS_SETTINGS[field].env];
    return value === undefined || value === '' ? undefined : value;
  };
  const caFile = pick('caFile');
  const certFile = pick('certFile');
  const keyFile = pick('keyFile');
  const servername = pick('serverName');
  if (caFile === undefined && certFile === undefined && keyFile === undefined && servername === undefined) return undefined;
  if (!tls) {
    const set = (Object.keys(TLS_SETTINGS) as TlsField[]).filter((f) => pick(f) !== undefined).map(named);
    throw new ConfigError(`TLS settings are given (${set.join(', ')}) but the Redis connection is not TLS: use a rediss:// URL (or the "tls" option), or unset them.`);
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError(`Mutual TLS needs both the client certificate and its key: ${certFile === undefined ? `${named('keyFile')} is set, ${named('certFile')} is not` : `${named('certFile')} is set, ${named('keyFile')} is not`}.`);
  }
  const CERT = /-----BEGIN CERTIFICATE-----/;
  const ca = caFile === undefined ? undefined : readPem('caFile', caFile, CERT, 'certificate');
  const cert = certFile === undefined ? undefined : readPem('certFile', certFile, CERT, 'certificate');
  const key = keyFile === undefined ? undefined : readPem('keyFile', keyFile, /-----BEGIN [A-Z ]*PRIVATE KEY-----/, 'private key');
  try {
    createSecureContext({ ca, cert, key });
  } catch (error) {
    const message = (error as Error).message;
    if (/key values mismatch/i.test(message)) {
      throw new ConfigError(`The client certificate ${named('certFile')} "${preview(certFile ?? '')}" and the key ${named('keyFile')} "${preview(keyFile ?? '')}" do not belong together (${message}).`, { cause: error });
    }
    throw new ConfigError(`The TLS files (${[caFile, certFile, keyFile].filter((f) => f !== undefined).join(', ')}) cannot be used: ${message}.`, { cause: error });
  }
  return Object.freeze({ ca, cert, key, servername, caFile, certFile, keyFile });
}

/**
 * Advice for a failed TLS connection to Redis: what is wrong with which certificate, and the
 * setting that fixes it; undefined when the error is not one of TLS's. `NODE_EXTRA_CA_CERTS`
 * works too, but names no option of ours.
 */
export function tlsFailureAdvice(failure: Error, config: RedisConfig): string | undefined {
  const code = (failure as NodeJS.ErrnoException).code ?? '';
  const tls = config.tlsOptions;
  // OpenSSL's own messages run over several lines of internals; its reason is the part that says.
  const reason = (failure as { reason?: unknown }).reason;
  const error = { message: typeof reason === 'string' ? reason : (failure.message.split('\n')[0] ?? failure.message) };
  switch (code) {
    case 'SELF_SIGNED_CERT_IN_CHAIN':
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
      return tls?.caFile
        ? `the server's certificate is not signed by the CA in ${named('caFile')} "${preview(tls.caFile)}" (${error.message}): point it at the CA that signed the server's certificate.`
        : `the server's certificate is signed by a CA this client does not trust (${error.message}): set ${named('caFile')} to that CA's PEM file.`;
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `the server's certificate is not made for "${config.host}" (${error.message}): connect by a name it lists, or set ${named('serverName')} to the name it was made for.`;
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return `the server's certificate ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'} (${error.message}): renew it on the server (tls-cert-file), or check this machine's clock.`;
    case 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED':
    case 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE':
      return tls?.certFile
        ? `the server refused the handshake (${error.message}): check that it accepts the client certificate in ${named('certFile')}.`
        : `the server requires a client certificate (mutual TLS) (${error.message}): set ${named('certFile')} and ${named('keyFile')}.`;
    case 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA':
    case 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE':
    case 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR':
      return `the server does not accept the client certificate ${named('certFile')} "${preview(tls?.certFile ?? '')}" (${error.message}): use one signed by a CA in the server's tls-ca-cert-file.`;
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
      return `what answers on port ${config.port} does not speak TLS (${error.message}): use redis:// for it, or the port of its tls-port.`;
    default:
      return undefined;
  }
}

function resolveRedisAddress(options: RedisOptions, env: NodeJS.ProcessEnv): RedisConfig {
  if (options.cluster !== undefined) {
    if (options.url !== undefined || options.host !== undefined || options.port !== undefined) throw new ConfigError('Give either "cluster" (seed nodes) or url/host/port, not both.');
    if (options.db !== undefined && options.db !== 0) throw new ConfigError('Redis Cluster has only database 0; drop the "db" option.');
    const seeds = options.cluster.map((node, i) => parseSeed(node.replace(/^rediss?:\/\//, ''), `the "cluster" option's node ${i + 1}`));
    if (seeds.length === 0) throw new ConfigError('The "cluster" option lists no seed nodes; give at least one host:port.');
    return build({ cluster: seeds, host: seeds[0]!.host, port: seeds[0]!.port, db: 0, username: options.username, password: options.password, tls: tlsOn(options.tls) ?? false });
  }
  const hasExplicit = options.url !== undefined || options.host !== undefined || options.port !== undefined;
  let base: RedisConfig;
  if (options.url !== undefined) base = parseRedisUrl(options.url, 'the "url" option');
  else if (!hasExplicit && env.REDIS_URL) base = parseRedisUrl(env.REDIS_URL, 'REDIS_URL');
  else base = parseRedisUrl(DEFAULT_REDIS_URL, 'the default');
  const host = options.host ?? base.host;
  const port = options.port ?? base.port;
  const db = options.db ?? base.db;
  if (typeof host !== 'string' || host.length === 0) throw new ConfigError('Redis host is empty: pass { host } or set REDIS_URL.');
  checkPort(port, 'the "port" option');
  if (!Number.isInteger(db) || db < 0) throw new ConfigError(`Redis db ${String(db)} is not a non-negative integer.`);
  if (base.cluster) {
    if (options.host !== undefined || options.port !== undefined) throw new ConfigError('A redis-cluster:// URL names its seed nodes; drop the host and port options.');
    return build({ ...base, username: options.username ?? base.username, password: options.password ?? base.password, tls: tlsOn(options.tls) ?? base.tls });
  }
  return build({
    cluster: undefined,
    host,
    port,
    db,
    username: options.username ?? base.username,
    password: options.password ?? base.password,
    tls: tlsOn(options.tls) ?? base.tls,
  });
}

/** Settings switch TLS on; `true` / `false` say so; undefined leaves it to the URL. */
function tlsOn(tls: RedisOptions['tls']): boolean | undefined {
  return typeof tls === 'object' ? true : tls;
}

function checkPort(port: number, where: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`Redis port ${String(port)} from ${where} is not an integer between 1 and 65535.`);
  }
}

/** A URL with its password replaced by ***, for messages. */
export function maskUrl(text: string): string {
  return text.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

const CLUSTER_URL = /^(rediss?)-cluster:\/\/(?:([^@/]*)@)?([^/?#@]+)\/?(\d*)$/;

/** One `host:port` (or `[v6]:port`) of a seed list. */
function parseSeed(text: string, where: string): ClusterSeed {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(text.trim());
  if (!m) throw new ConfigError(`${where}: "${preview(text)}" is not host:port (e.g. 10.0.0.5:7000).`);
  const port = Number(m[3]);
  checkPort(port, where);
  return { host: (m[1] ?? m[2]) as string, port };
}

/** `redis-cluster://[user:password@]host:port,host:port,…` */
function parseClusterUrl(text: string, where: string): RedisConfig {
  const m = CLUSTER_URL.exec(text);
  if (!m) throw new ConfigError(`${where} "${preview(maskUrl(text))}" is not a cluster URL. Expected redis-cluster://[user:password@]host:port,host:port,…`);
  if (m[4] !== '' && m[4] !== '0') throw new ConfigError(`${where}: Redis Cluster has only database 0; drop "/${m[4]}".`);
  const auth = m[2] ?? '';
  const colon = auth.indexOf(':');
  const user = colon === -1 ? auth : auth.slice(0, colon);
  const password = colon === -1 ? undefined : auth.slice(colon + 1);
  const seeds = (m[3] as string).split(',').map((node, i) => parseSeed(node, `${where}, node ${i + 1}`));
  return build({
    cluster: seeds,
    host: seeds[0]!.host,
    port: seeds[0]!.port,
    db: 0,
    username: user ? decodeURIComponent(user) : undefined,
    password: password ? decodeURIComponent(password) : undefined,
    tls: m[1] === 'rediss',
  });
}

export function parseRedisUrl(text: string, where: string): RedisConfig {
  if (/^rediss?-cluster:/.test(text)) return parseClusterUrl(text, where);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(`${where} "${preview(maskUrl(text))}" is not a URL. Expected redis://[user:password@]host:port[/db], e.g. redis://localhost:6379/0.`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(`${where} must start with redis:// (or rediss:// for TLS), got "${url.protocol}//".`);
  }
  const port = url.port === '' ? 6379 : Number(url.port);
  checkPort(port, where);
  const path = url.pathname.replace(/^\//, '');
  const db = path === '' ? 0 : Number(path);
  if (!/^\d*$/.test(path) || !Number.isInteger(db)) {
    throw new ConfigError(`${where}: the database "/${preview(path)}" is not a number; use e.g. redis://localhost:6379/0.`);
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new ConfigError(`${where} names no host; use e.g. redis://localhost:6379.`);
  return build({
    cluster: undefined,
    host,
    port,
    db,
    username: url.username ? decodeURIComponent(url.username) : undefined,
    password: url.password ? decodeURIComponent(url.password) : undefined,
    tls: url.protocol === 'rediss:',
  });
}

function build(c: Omit<RedisConfig, 'url' | 'display' | 'tlsOptions'>): RedisConfig {
  const scheme = c.tls ? 'rediss' : 'redis';
  const hostPart = c.host.includes(':') ? `[${c.host}]` : c.host;
  const user = c.username ? encodeURIComponent(c.username) : '';
  const auth = (secret: string | undefined) => (secret === undefined ? (user ? `${user}@` : '') : `${user}:${secret}@`);
  const tail = c.cluster ? c.cluster.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',') : `${hostPart}:${c.port}/${c.db}`;
  const schemeName = c.cluster ? `${scheme}-cluster` : scheme;
  return Object.freeze({
    ...c,
    tlsOptions: undefined,
    cluster: c.cluster ? Object.freeze(c.cluster.map((n) => Object.freeze({ ...n }))) : undefined,
    url: `${schemeName}://${auth(c.password === undefined ? undefined : encodeURIComponent(c.password))}${tail}`,
    display: `${schemeName}://${auth(c.password === undefined ? undefined : '***')}${tail}`,
  });
}

export interface ReconnectOptions {
  /** @default 50 */
  baseMs?: number;
  /** @default 5000 */
  maxMs?: number;
}

export interface BusLimits {
  /** @default 1 MiB */
  maxMessageBytes?: number;
  /** @default 10000 */
  maxPendingPerChannel?: number;
}

export interface ResolvedLimits {
  readonly maxMessageBytes: number;
  readonly maxPendingPerChannel: number;
}

export function resolveLimits(limits: BusLimits = {}): ResolvedLimits {
  const maxMessageBytes = limits.maxMessageBytes ?? DEFAULTS.maxMessageBytes;
  const maxPendingPerChannel = limits.maxPendingPerChannel ?? DEFAULTS.maxPendingPerChannel;
  positiveInt(maxMessageBytes, 'maxMessageBytes');
  positiveInt(maxPendingPerChannel, 'maxPendingPerChannel');
  // Redis itself refuses bulk strings over 512 MB.
  if (maxMessageBytes > 512 * 1024 * 1024) throw new ConfigError('maxMessageBytes may be at most 512 MiB, the largest value Redis accepts.');
  return Object.freeze({ maxMessageBytes, maxPendingPerChannel });
}

export function resolveReconnect(options: ReconnectOptions = {}): Required<ReconnectOptions> {
  const baseMs = options.baseMs ?? DEFAULTS.reconnectBaseMs;
  const maxMs = options.maxMs ?? DEFAULTS.reconnectMaxMs;
  positiveInt(baseMs, 'reconnect.baseMs');
  positiveInt(maxMs, 'reconnect.maxMs');
  if (maxMs < baseMs) throw new ConfigError(`reconnect.maxMs (${maxMs}) is below reconnect.baseMs (${baseMs}).`);
  return Object.freeze({ baseMs, maxMs });
}

export function resolveSender(sender: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const value = sender ?? env.TICKBUS_SENDER ?? DEFAULTS.sender;
  if (typeof value !== 'string' || value.length === 0 || value.length > 128) {
    throw new ConfigError('The sender name must be 1 to 128 characters (option "sender" or TICKBUS_SENDER).');
  }
  return value;
}

function positiveInt(value: number, name: string): void {
  if (!Number.isInteger(value) || value <= 0) throw new ConfigError(`${name} must be a positive integer, got ${String(value)}.`);
}

/**
 * Exponential back-off with jitter: a random whole number of ms in [floor(c/2), c) where
 * c = min(max, base·2^attempt).
 * The jitter spreads many clients that lost the same Redis; the lower half-bound keeps a
 * client from hammering a server that is still down.
 */
export function backoffDelay(attempt: number, options: Required<ReconnectOptions>, random: () => number = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(ceiling / 2 + (random() * ceiling) / 2);
}

/** The log levels pino knows, most severe first; `silent` turns logging off. */
export const LOG_LEVELS = Object.freeze(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const);
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The log level from TICKBUS_LOG_LEVEL, else `fallback` (services log at info, short-lived
 * commands and `tickbus up` at warn). A level pino does not know is refused here, at
 * start-up, with the levels it accepts.
 */
export function resolveLogLevel(fallback: LogLevel = 'info', env: NodeJS.ProcessEnv = process.env): LogLevel {
  const value = env.TICKBUS_LOG_LEVEL ?? fallback;
  if (!(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new ConfigError(`TICKBUS_LOG_LEVEL "${preview(value)}" is not a log level; use one of ${LOG_LEVELS.join(', ')}.`);
  }
  return value as LogLevel;
}

/**
 * REDIS_URL as set (undefined when unset or empty), for callers that choose a backend
 * before building a RedisConfig (`tickbus up`); resolveRedisConfig validates it.
 */
export function redisUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return env.REDIS_URL || undefined;
}

/**
 * The HS256 secret `--jwt-secret-env NAME` names: the variable NAME, which must be set and
 * not empty. Its length (32 characters at least) is the gateway's rule, checked in
 * gateway/auth.ts where every secret is, however it was given.
 */
export function resolveJwtSecret(variable: string, env: NodeJS.ProcessEnv = process.env): string {
  const secret = env[variable];
  if (!secret) throw new ConfigError(`--jwt-secret-env ${variable}: that environment variable is not set.`);
  return secret;
}

/**
 * Just these variables of the environment (those set), frozen: what a part that reads its
 * settings from an environment (the Alpaca feed's keys) is given instead of the whole one.
 */
export function environment<N extends string>(names: readonly N[], env: NodeJS.ProcessEnv = process.env): Readonly<Partial<Record<N, string>>> {
  const out: Partial<Record<N, string>> = {};
  for (const name of names) {
    const value = env[name];
    if (value !== undefined) out[name] = value;
  }
  return Object.freeze(out);
}
