// The operator's HTTP endpoints every tickbus service exposes: /health (JSON; 200 when
// healthy, 503 when not) and /metrics (Prometheus text). Services add routes of their own.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ListenError } from '../core/errors.ts';
import { OPS_DEFAULTS } from '../core/defaults.ts';
import { LogThrottle } from '../core/log-throttle.ts';
import type { Logger } from '../core/logger.ts';

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  [key: string]: unknown;
}

export type Route = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface OpsServerOptions {
  /** @default 0 (any free port) */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  registry: Registry;
  health: () => HealthReport | Promise<HealthReport>;
  routes?: Record<string, Route>;
  /** Where a server fault after listening (an accept that failed) is logged; the server keeps serving. */
  logger?: Logger;
  /** The service, in those log lines. @default 'ops' */
  name?: string;
}

export class OpsServer {
  readonly #server: Server;
  readonly #options: OpsServerOptions;

  constructor(options: OpsServerOptions) {
    this.#options = options;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`internal error: ${(error as Error).message}\n`);
      });
    });
  }

  get server(): Server {
    return this.#server;
  }

  /** Listens on the port; rejects with a ListenError (port taken, not allowed) that names it. */
  async listen(): Promise<{ port: number; url: string }> {
    const port = this.#options.port ?? 0;
    const host = this.#options.host ?? OPS_DEFAULTS.host;
    await new Promise<void>((resolve, reject) => {
      const failed = (error: Error) => reject(new ListenError(host, port, error));
      this.#server.once('error', failed);
      this.#server.listen(port, host, () => {
        this.#server.off('error', failed);
        // An 'error' from a listening server (an accept refused: ENFILE, ENOBUFS) with no
        // listener would be thrown and end the process, and every client with it. Logged
        // (throttled); the server keeps listening and the connections it holds go on.
        const throttle = new LogThrottle(1, 10_000);
        this.#server.on('error', (error: NodeJS.ErrnoException) => {
          const suppressed = throttle.take();
          if (suppressed >= 0) this.#options.logger?.warn({ code: error.code, err: error.message, suppressed }, `${this.#options.name ?? 'ops'}: the HTTP server failed to accept a connection; still serving the others`);
        });
        resolve();
      });
    });
    const bound = this.#server.address() as AddressInfo;
    const shown = bound.address.includes(':') ? `[${bound.address}]` : bound.address;
    return { port: bound.port, url: `http://${shown}:${bound.port}` };
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path === '/health') {
      const report = await this.#options.health();
      res.writeHead(report.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(report)}\n`);
      return;
    }
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': this.#options.registry.contentType });
      res.end(await this.#options.registry.metrics());
      return;
    }
    const route = this.#options.routes?.[path];
    if (route) {
      await route(req, res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found: try /health or /metrics\n');
  }
}
