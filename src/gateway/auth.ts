// Optional JWT authentication for the gateway (jose): HS256 with a shared secret, or RS256
// with the issuer's public key. The token names what its user may see: `symbols` (tickers,
// or "*") and `channels` (exposed catalog channels, or "*"). A token that names neither
// allows everything. Placing and cancelling orders needs an `orders` claim: `true`, or the
// symbols allowed. Expiry is checked at connect and enforced during the session.
import { importSPKI, jwtVerify, type JWTPayload } from 'jose';
import { checkParam, TICKER } from '../core/channel-param.ts';
import { BusError, ConfigError, ErrorCode } from '../core/errors.ts';
import type { Grants } from './session.ts';

export interface TokenOptions {
  /** HS256: the shared secret. */
  secret?: string;
  /** RS256: the issuer's public key, PEM (SPKI). */
  publicKey?: string;
  issuer?: string;
  audience?: string;
}

type Key = Uint8Array | Awaited<ReturnType<typeof importSPKI>>;
const keys = new WeakMap<TokenOptions, Promise<{ key: Key; alg: 'HS256' | 'RS256' }>>();

function keyOf(options: TokenOptions): Promise<{ key: Key; alg: 'HS256' | 'RS256' }> {
  let k = keys.get(options);
  if (!k) {
    if (options.secret && options.publicKey) throw new ConfigError('gateway auth: give either secret (HS256) or publicKey (RS256), not both.');
    if (options.secret) {
      if (options.secret.length < 32) throw new ConfigError('gateway auth: an HS256 secret needs at least 32 characters.');
      k = Promise.resolve({ key: new TextEncoder().encode(options.secret), alg: 'HS256' as const });
    } else if (options.publicKey) {
      k = importSPKI(options.publicKey, 'RS256').then((key) => ({ key, alg: 'RS256' as const }));
    } else {
      throw new ConfigError('gateway auth: set secret (HS256) or publicKey (RS256).');
    }
    keys.set(options, k);
  }
  return k;
}

function claimSet(payload: JWTPayload, claim: 'symbols' | 'channels'): ReadonlySet<string> | undefined {
  const value = payload[claim];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new BusError(ErrorCode.Unauthorized, `the "${claim}" claim must be an array of strings`);
  const list = value as string[];
  return new Set(claim === 'symbols' ? list.map((s) => (s === '*' ? s : checkParam(TICKER, 'symbol', s))) : list);
}

/** The `orders` claim: true is every symbol ("*"), an array names them; absent is none. */
function ordersClaim(payload: JWTPayload): ReadonlySet<string> | undefined {
  const value = payload.orders;
  if (value === undefined || value === false) return undefined;
  if (value === true) return new Set(['*']);
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new BusError(ErrorCode.Unauthorized, 'the "orders" claim must be true or an array of symbols');
  return new Set((value as string[]).map((s) => (s === '*' ? s : checkParam(TICKER, 'symbol', s))));
}

/** The grants of a valid token, or a BusError (TB_ERR_UNAUTHORIZED) saying what is wrong. */
export async function verifyToken(token: string | undefined, options: TokenOptions): Promise<{ grants: Grants; expiresAt: number | undefined } | BusError> {
  if (!token) return new BusError(ErrorCode.Unauthorized, 'a token is required: pass it as ?token=… or an Authorization: Bearer header');
  try {
    const { key, alg } = await keyOf(options);
    const { payload } = await jwtVerify(token, key, { algorithms: [alg], issuer: options.issuer, audience: options.audience });
    const grants: Grants = { symbols: claimSet(payload, 'symbols'), channels: claimSet(payload, 'channels'), user: payload.sub, orders: ordersClaim(payload) };
    return { grants, expiresAt: payload.exp === undefined ? undefined : payload.exp * 1000 };
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    return new BusError(ErrorCode.Unauthorized, `the token was refused (${(error as Error).message})`);
  }
}
