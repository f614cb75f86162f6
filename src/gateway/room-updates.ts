// One update of a room, encoded once for all its members (protocol.ts `Update`). Rooms make
// these and sessions queue or send them; both import this module, neither the other.
import type { ChannelRef } from '../core/channel.ts';

/** What an update says about the room it comes from; also what a session tells rooms apart by. */
export interface RoomIdentity {
  readonly key: string;
  readonly ref: ChannelRef;
  readonly symbol: string | undefined;
}

/** One update of a room, encoded once for every member. */
export interface RoomItem {
  /** The update object as JSON, for a batch. */
  readonly json: string;
  readonly position: string | undefined;
  /** Set on price updates: within one flush only the newest per key needs to go out. */
  readonly conflateKey: string | undefined;
  /** A whole batch frame of just this update, built on first use and shared. */
  frame(): Buffer;
}

/** One update as JSON (protocol.ts `Update`), built by concatenation: once per message. */
export function updateJson(room: RoomIdentity, data: unknown, position: string | undefined, replayed = false, channel = room.ref.name): string {
  return (
    '{"channel":' +
    JSON.stringify(channel) +
    (room.symbol === undefined ? '' : ',"symbol":' + JSON.stringify(room.symbol)) +
    (position === undefined ? '' : ',"position":"' + position + '"') +
    (replayed ? ',"replayed":true' : '') +
    ',"data":' +
    JSON.stringify(data) +
    '}'
  );
}

export function makeItem(room: RoomIdentity, data: unknown, position: string | undefined, channel?: string): RoomItem {
  const json = updateJson(room, data, position, false, channel);
  const isPrice = room.symbol !== undefined && (data as { type?: unknown } | null)?.type === 'price';
  let frame: Buffer | undefined;
  return {
    json,
    position,
    conflateKey: isPrice ? room.key : undefined,
    frame: () => (frame ??= Buffer.from('{"type":"batch","updates":[' + json + ']}')),
  };
}

/** An update already encoded (taken back from a room's shared chunk): no position to compare, no conflation. */
export function plainItem(json: string): RoomItem {
  let frame: Buffer | undefined;
  return { json, position: undefined, conflateKey: undefined, frame: () => (frame ??= Buffer.from('{"type":"batch","updates":[' + json + ']}')) };
}
