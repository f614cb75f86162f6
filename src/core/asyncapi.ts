// The AsyncAPI 3.0 document of a set of catalogs: what teams that describe their event
// channels in AsyncAPI expect to find, generated from the channel definitions so it cannot
// drift from what the bus validates. Pure: no I/O; `tickbus schema export --format asyncapi`
// writes it.
import type { Catalog } from './catalog.ts';
import type { Channel } from './channel.ts';
import type { ChannelParam } from './channel-param.ts';
import { ConfigError } from './errors.ts';
import { deadLetterKey, streamKey } from './keys.ts';
import type { StandardJSONSchemaV1, StandardSchemaV1 } from '@standard-schema/spec';

export interface AsyncApiOptions {
  /** The document's `info.version`: the version of the catalogs. */
  version: string;
  /** @default 'tickbus channels' */
  title?: string;
  /** The Redis server the document names, `host:port`. @default '127.0.0.1:6379' */
  host?: string;
}

/** How a channel delivers, in the document's words (`x-tickbus-delivery.mode`). */
export type AsyncApiDelivery = 'pubsub' | 'history' | 'durable';

export function deliveryOf(ch: Channel): AsyncApiDelivery {
  if (ch.delivery === 'durable') return 'durable';
  return ch.hasHistory ? 'history' : 'pubsub';
}

type Json = Record<string, unknown>;

const ISO_TIMESTAMP: Json = { type: 'string', format: 'date-time', description: 'When the message was written (ISO-8601).' };

/**
 * The data schema as JSON Schema draft-07, the dialect AsyncAPI schemas extend: the
 * validator must implement Standard JSON Schema (zod 4 does).
 */
function dataSchema(schema: StandardSchemaV1, channel: string): Json {
  const props = schema['~standard'] as StandardSchemaV1.Props & Partial<StandardJSONSchemaV1.Props>;
  if (!props.jsonSchema) {
    throw new ConfigError(`The schema of channel "${channel}" (vendor "${props.vendor}") cannot export JSON Schema: use a validator that implements Standard JSON Schema, such as zod 4.`);
  }
  const { $schema: _dialect, ...rest } = props.jsonSchema.input({ target: 'draft-07' });
  return rest;
}

/** The wire message: the seed 001 envelope around the data, or the data itself (bare). */
function payloadSchema(ch: Channel): Json {
  const data = dataSchema(ch.schema, ch.template);
  if (ch.wire === 'bare') return data;
  const properties: Json = {
    data,
    timestamp: ISO_TIMESTAMP,
    sender: { type: 'string', description: 'The service that wrote the message.' },
    id: { type: 'string', description: ch.delivery === 'durable' ? 'The message id (a UUID), always present on durable channels: handlers de-duplicate with it.' : 'An optional message id.' },
  };
  if (ch.hasHistory) properties.position = { type: 'string', pattern: '^[0-9]+-[0-9]+$', description: 'The stream entry id of this message in the channel history: resume after it.' };
  properties.traceparent = { type: 'string', pattern: '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$', description: 'W3C trace context of the publish, when the publisher traces (OpenTelemetry); a malformed one is ignored.' };
  properties.tracestate = { type: 'string', description: 'W3C tracestate that goes with traceparent, when there is one.' };
  return { type: 'object', required: ['data', 'timestamp', 'sender'], properties };
}

/** A channel parameter: AsyncAPI 3.0 parameters carry no schema, so the allow-list rides in extensions. */
function parameter(rule: ChannelParam): Json {
  return {
    description: `The ${rule.label}: ${rule.rule}. Values outside the allow-list are refused before any channel name is built (TB_ERR_INVALID_CHANNEL_PARAM).`,
    'x-tickbus-pattern': rule.allow.source,
    'x-tickbus-max-length': rule.maxLength,
  };
}

/** A channel's key of the document: AsyncAPI ids allow letters, digits, `_` and `-`. */
function channelId(ch: Channel, taken: Set<string>): string {
  const base = ch.template.replace(/[{}]/g, '').replace(/[^A-Za-z0-9_-]/g, '_');
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}_${n}`;
  taken.add(id);
  return id;
}

/** A channel key for every name of the channel: `{ticker}` shown as `<ticker>` (braces are the hash tag's). */
function keyOf(ch: Channel, build: (name: string) => string): string {
  return build(ch.template.replace(/\{([A-Za-z0-9_]+)\}/g, '<$1>'));
}

function deliveryExtension(ch: Channel): Json {
  const mode = deliveryOf(ch);
  const out: Json = { mode, sharded: ch.sharded };
  if (ch.retention) out.retention = { maxLen: ch.retention.maxLen, maxAgeMs: ch.retention.maxAgeMs };
  if (mode !== 'pubsub') out.streamKey = keyOf(ch, streamKey);
  if (mode === 'durable') out.deadLetterKey = keyOf(ch, deadLetterKey);
  if (ch.keyField) out.keyField = ch.keyField;
  return out;
}

function deliveryText(ch: Channel): string {
  switch (deliveryOf(ch)) {
    case 'durable':
      return `Durable: not PUBLISHed; each message is appended (XADD, field \`payload\`) to the stream \`${keyOf(ch, streamKey)}\` and read by consumer groups, at least once; messages a group gives up on go to \`${keyOf(ch, deadLetterKey)}\`.`;
    case 'history':
      return `Pub/sub with history: PUBLISHed, and appended to the stream \`${keyOf(ch, streamKey)}\` (the newest ${ch.retention?.maxLen ?? '?'}), so a subscriber resumes after its last \`position\`.`;
    default:
      return 'Pub/sub: PUBLISHed, at most once, to whoever is subscribed at that moment.';
  }
}

/** The AsyncAPI 3.0 document of the catalogs' channels, with one Redis server. */
export function catalogsAsyncApi(catalogs: readonly Catalog[], options: AsyncApiOptions): Json {
  const taken = new Set<string>();
  const channels: Json = {};
  const operations: Json = {};
  const messages: Json = {};
  for (const catalog of catalogs) {
    for (const ch of catalog.list()) {
      const id = channelId(ch, taken);
      const messageId = `${id}_message`;
      messages[messageId] = {
        name: messageId,
        title: ch.template,
        summary: ch.wire === 'bare' ? 'The data as it is (bare wire format).' : 'The data in the seed 001 envelope {data, timestamp, sender}.',
        contentType: 'application/json',
        payload: payloadSchema(ch),
        'x-tickbus-wire': ch.wire,
      };
      const params = ch.params as Record<string, ChannelParam>;
      const channel: Json = {
        address: ch.template,
        title: ch.template,
        description: `${ch.description ? `${ch.description} ` : ''}${deliveryText(ch)}`,
        messages: { [messageId]: { $ref: `#/components/messages/${messageId}` } },
        servers: [{ $ref: '#/servers/redis' }],
        tags: [{ name: catalog.name }, { name: deliveryOf(ch) }],
        'x-tickbus-catalog': catalog.name,
        'x-tickbus-pattern': ch.pattern(),
        'x-tickbus-delivery': deliveryExtension(ch),
      };
      if (ch.paramNames.length > 0) channel.parameters = Object.fromEntries(ch.paramNames.map((n) => [n, parameter(params[n] as ChannelParam)]));
      channels[id] = channel;
      const durable = ch.delivery === 'durable';
      const ref = { $ref: `#/channels/${id}` };
      const msg = [{ $ref: `#/channels/${id}/messages/${messageId}` }];
      operations[`send_${id}`] = { action: 'send', channel: ref, messages: msg, summary: durable ? `Append a message to ${ch.template} (XADD).` : `Publish on ${ch.template} (PUBLISH${ch.sharded ? ', SPUBLISH on a cluster' : ''}).` };
      operations[`receive_${id}`] = {
        action: 'receive',
        channel: ref,
        messages: msg,
        summary: durable ? `Consume ${ch.template} in a consumer group (XREADGROUP, XACK).` : `Subscribe to ${ch.template} (${ch.isTemplate ? `PSUBSCRIBE ${ch.pattern()} for all of them` : 'SUBSCRIBE'}).`,
      };
    }
  }
  const host = options.host ?? '127.0.0.1:6379';
  return {
    asyncapi: '3.0.0',
    info: {
      title: options.title ?? 'tickbus channels',
      version: options.version,
      description: `The channels of the tickbus catalogs ${catalogs.map((c) => c.name).join(', ')}, on Redis. Each message is JSON; envelope channels wrap the data as {"data", "timestamp", "sender"} (seed 001), bare channels carry it as it is. Channel names with {parameters} take values from an allow-list only.`,
      license: { name: 'MIT' },
      tags: catalogs.map((c) => ({ name: c.name, description: c.description })),
    },
    defaultContentType: 'application/json',
    servers: {
      redis: {
        host,
        protocol: 'redis',
        description: 'A Redis (or Redis Cluster) server: pub/sub for channels, streams for history and durable channels. Use rediss:// for TLS.',
      },
    },
    channels,
    operations,
    components: { messages },
  };
}
