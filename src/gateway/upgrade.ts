// The HTTP upgrade to the WebSocket at /ws: the browser's origin is checked, then (with JWT)
// the token, and only then is the handshake made. A refused upgrade gets a plain HTTP answer
// (404, 403, 401, 503 when full) saying why, and no socket.
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Background } from '../core/background.ts';
import { GATEWAY_DEFAULTS } from '../core/defaults.ts';
import { BusError, ErrorCode } from '../core/errors.ts';
import { verifyToken, type TokenOptions } from './auth.ts';
import type { Grants } from './session.ts';

export interface UpgradeOptions {
  /** Largest frame a client may send. */
  readonly maxFrameBytes: number;
  /** Browser origins allowed to connect (the Origin header); undefined allows any. */
  readonly allowedOrigins: readonly string[] | undefined;
  /** Require a JWT naming what the user may see. */
  readonly auth: TokenOptions | undefined;
  /**
   * Connections held now (open sessions); at `maxConnections` (counting the upgrades under
   * way) the next is answered 503 with Retry-After.
   */
  readonly connections: () => number;
  readonly maxConnections: number;
  /** An upgrade refused, by the error code it counts as. */
  readonly refused: (code: ErrorCode) => void;
  /** Where a failed upgrade is reported. */
  readonly background: Background;
  /** A client is connected, with what its token allows (everything without JWT). */
  readonly connected: (ws: WebSocket, grants: Grants, expiresAt: number | undefined) => void;
}

/** Takes the WebSocket upgrades of `server`. */
export function acceptUpgrades(server: Server, options: UpgradeOptions): void {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: options.maxFrameBytes, clientTracking: false });
  // Upgrades between their request and their session (a token being verified): counted
  // against the cap, so that a burst of them cannot pass it.
  const pending = { count: 0 };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    pending.count++;
    upgrade(wss, options, pending, req, socket, head)
      .catch((error: unknown) => {
        socket.destroy();
        options.background.failed('gateway_upgrade', error);
      })
      .finally(() => pending.count--);
  });
}

async function upgrade(wss: WebSocketServer, options: UpgradeOptions, pending: { count: number }, req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://gateway');
  const reject = (status: number, text: string, headers = '') => {
    socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain\r\nconnection: close\r\n${headers}\r\n${text}\n`);
  };
  if (url.pathname !== '/ws') return reject(404, 'Not Found: the WebSocket is at /ws');
  // pending counts this upgrade too: the cap is reached when the held and the arriving fill it.
  if (options.connections() + pending.count > options.maxConnections) {
    options.refused(ErrorCode.GatewayFull);
    return reject(503, `Service Unavailable: this gateway holds its maximum of ${options.maxConnections} connections; retry in ${GATEWAY_DEFAULTS.fullRetryAfterSeconds} s or use another gateway`, `retry-after: ${GATEWAY_DEFAULTS.fullRetryAfterSeconds}\r\n`);
  }
  const origin = req.headers.origin;
  if (options.allowedOrigins && origin !== undefined && !options.allowedOrigins.includes(origin)) {
    options.refused(ErrorCode.Forbidden);
    return reject(403, 'Forbidden: origin not allowed');
  }
  let grants: Grants = { symbols: undefined, channels: undefined };
  let expiresAt: number | undefined;
  if (options.auth) {
    const header = req.headers.authorization;
    const token = url.searchParams.get('token') ?? (header?.startsWith('Bearer ') ? header.slice(7) : undefined);
    const verified = await verifyToken(token, options.auth);
    if (verified instanceof BusError) {
      options.refused(ErrorCode.Unauthorized);
      return reject(401, `Unauthorized: ${verified.message}`);
    }
    grants = verified.grants;
    expiresAt = verified.expiresAt;
  }
  wss.handleUpgrade(req, socket, head, (ws) => options.connected(ws, grants, expiresAt));
}
