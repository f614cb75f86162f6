// Whose eyes an update is for. A browser user's orders travel on the ticker's channel, like
// everyone's, with the order's client_id `web:<user>`; the gateway gives them only to the
// connections acting for that user (the token's subject with JWT; without it, the users a
// connection named in its requests), live, on resume and in `history`. Prices, and the orders
// of bots (their own client ids), are for everyone who watches the ticker.

/** The client_id of a browser user's orders: seed 004's positions are kept per strategy, this one per user. */
const WEB_PREFIX = 'web:';

export function webClientId(user: string): string {
  return `${WEB_PREFIX}${user}`;
}

/** The browser user an update belongs to, or undefined when it is for every watcher. */
export function privateTo(data: unknown): string | undefined {
  if (data === null || typeof data !== 'object' || (data as { type?: unknown }).type !== 'order') return undefined;
  const clientId = (data as { order_data?: { client_id?: unknown } }).order_data?.client_id;
  return typeof clientId === 'string' && clientId.startsWith(WEB_PREFIX) ? clientId.slice(WEB_PREFIX.length) : undefined;
}

/** Who may see private updates: a connection. */
export interface Viewer {
  actsFor(user: string): boolean;
}

/** May this viewer see the update? */
export function visibleTo(viewer: Viewer, data: unknown): boolean {
  const owner = privateTo(data);
  return owner === undefined || viewer.actsFor(owner);
}
