// One Alpaca WebSocket kept alive: pings with a pong deadline, protocol deadlines, reconnection
// with back-off and jitter, and a close that waits until the socket is really gone. Protocol
// logic stays with the streams that use it; this module only knows sockets and timers.
import { WebSocket, type RawData } from 'ws';
import { backoffDelay } from '../../../core/config.ts';
import { preview } from '../../../core/errors.ts';
import { ALPACA_DEFAULTS, type SocketTiming } from './alpaca-config.ts';

/** Why a connection went down: the reason to report, and Alpaca's error code when it gave one. */
export interface DropReason {
  readonly reason: string;
  readonly code: number | undefined;
}

export interface SocketHooks {
  /** The socket is open: start the protocol. */
  opened(): void;
  /** One frame, text or binary, as text; a returned promise pauses reading until it settles. */
  message(text: string): Promise<void> | undefined;
  /** The connection went down and is retried after `delayMs`. */
  retrying(attempt: number, delayMs: number, why: DropReason): void;
}

export class AlpacaSocket {
  #ws: WebSocket | undefined;
  #connection = 0;
  #attempt = 0;
  #ended = false;
  #ending: Promise<void> | undefined;
  #drop: DropReason | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #pongTimer: NodeJS.Timeout | undefined;
  #deadlineTimer: NodeJS.Timeout | undefined;
  #pauses = 0;

  readonly label: string;
  readonly url: string;
  readonly timing: SocketTiming;
  private readonly hooks: SocketHooks;

  constructor(label: string, url: string, timing: SocketTiming, hooks: SocketHooks) {
    this.label = label;
    this.url = url;
    this.timing = timing;
    this.hooks = hooks;
  }

  /** Increments with each connection, so that a loop over one frame can tell it was dropped. */
  get connection(): number {
    return this.#connection;
  }

  connect(): void {
    this.#retryTimer = undefined;
    if (this.#ended) return;
    this.#connection++;
    this.#drop = undefined;
    const ws = new WebSocket(this.url, {
      perMessageDeflate: false,
      handshakeTimeout: this.timing.handshakeTimeoutMs,
      maxPayload: ALPACA_DEFAULTS.maxPayloadBytes,
    });
    this.#ws = ws;
    let failure: string | undefined;
    ws.on('open', () => {
      if (ws !== this.#ws) return;
      this.#pingTimer = setInterval(() => this.#ping(ws), this.timing.pingIntervalMs);
      this.hooks.opened();
    });
    ws.on('message', (data: RawData) => {
      if (ws !== this.#ws || this.#ended) return;
      // Paper sends binary frames holding JSON text, live may send text: both decode the same.
      const wait = this.hooks.message(decode(data));
      if (wait) this.#pauseUntil(ws, wait);
    });
    ws.on('pong', () => {
      if (ws !== this.#ws) return;
      clearTimeout(this.#pongTimer);
      this.#pongTimer = undefined;
    });
    // 'close' always follows 'error'; the reconnection is decided there, once.
    ws.on('error', (error: Error) => {
      failure ??= error.message;
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.#onClose(ws, failure ?? `closed by the server, code ${code}${reason.length > 0 ? ` ${preview(reason.toString())}` : ''}`);
    });
  }

  /** Sends one message as JSON; false when the connection is not open (it is going down). */
  send(message: unknown): boolean {
    const ws = this.#ws;
    if (ws?.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  /** Drops the connection; it is retried with back-off. */
  drop(reason: string, code?: number): void {
    if (this.#ended || !this.#ws) return;
    this.#drop ??= { reason, code };
    this.#ws.terminate();
  }

  /** Drops the connection unless clearDeadline() is called within `ms`. */
  deadline(ms: number, what: string): void {
    this.clearDeadline();
    this.#deadlineTimer = setTimeout(() => this.drop(`no ${what} within ${ms} ms`), ms);
  }

  clearDeadline(): void {
    clearTimeout(this.#deadlineTimer);
    this.#deadlineTimer = undefined;
  }

  /** The session works: the next outage starts again from the base delay. */
  healthy(): void {
    this.#attempt = 0;
  }

  /** Closes for good (no reconnection); resolves once the socket is closed. */
  end(): Promise<void> {
    this.#ending ??= this.#end();
    return this.#ending;
  }

  async #end(): Promise<void> {
    this.#ended = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const ws = this.#ws;
    if (!ws) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => ws.terminate(), ALPACA_DEFAULTS.closeTimeoutMs);
      ws.once('close', () => {
        clearTimeout(force);
        resolve();
      });
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    });
  }

  #ping(ws: WebSocket): void {
    // While the sink holds us paused the pong cannot be read: that is not a dead server.
    if (ws.readyState !== WebSocket.OPEN || this.#pauses > 0) return;
    ws.ping();
    this.#pongTimer ??= setTimeout(() => {
      this.#pongTimer = undefined;
      this.drop(`no pong within ${this.timing.pongTimeoutMs} ms`);
    }, this.timing.pongTimeoutMs);
  }

  #pauseUntil(ws: WebSocket, wait: Promise<void>): void {
    if (this.#pauses++ === 0) {
      ws.pause();
      clearTimeout(this.#pongTimer);
      this.#pongTimer = undefined;
    }
    // Resumes whatever became of the wait: a rejected one must not leave the socket paused.
    const resume = () => {
      if (--this.#pauses === 0 && ws === this.#ws) ws.resume();
    };
    wait.then(resume, resume);
  }

  #onClose(ws: WebSocket, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#pauses = 0;
    clearInterval(this.#pingTimer);
    clearTimeout(this.#pongTimer);
    this.#pingTimer = this.#pongTimer = undefined;
    this.clearDeadline();
    if (this.#ended) return;
    const why = this.#drop ?? { reason, code: undefined };
    this.#attempt++;
    const delay = backoffDelay(this.#attempt - 1, this.timing.reconnect, this.timing.random);
    this.#retryTimer = setTimeout(() => this.connect(), delay);
    this.hooks.retrying(this.#attempt, delay, why);
  }
}

function decode(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
