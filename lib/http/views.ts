/**
 * @module http/views
 * The JSON shapes of the API and the dashboard: a connected client, a
 * session (online or not), a subscription, a message (payload as UTF-8 text
 * when it is valid text, else base64, cut to a preview length), and the
 * paging of lists. Read-only views of broker state, built per request.
 */
import type { Connection } from "../connection.ts";
import type { Message } from "../message.ts";
import type { Session } from "../session.ts";
import type { Subscription } from "../topic-tree.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** ms since the epoch as ISO 8601, or null for 0 (never / not set). */
export function iso(ms: number): string | null {
  return ms === 0 ? null : new Date(ms).toISOString();
}

export interface PayloadView {
  payload: string;
  encoding: "utf8" | "base64";
  size: number;
  truncated: boolean;
}

/** The payload as text when it is valid UTF-8 (cut at `max` bytes), else as base64. */
export function payloadView(payload: Buffer, max: number): PayloadView {
  const cut = payload.length > max;
  const part = cut ? payload.subarray(0, max) : payload;
  // A preview cut inside a multi-byte character is still text: try up to 3 bytes shorter.
  for (let back = 0; back <= (cut ? 3 : 0) && back < part.length; back++) {
    try {
      return { payload: utf8.decode(part.subarray(0, part.length - back)), encoding: "utf8", size: payload.length, truncated: cut };
    } catch {
      // not text at this length
    }
  }
  if (part.length === 0) return { payload: "", encoding: "utf8", size: payload.length, truncated: cut };
  return { payload: part.toString("base64"), encoding: "base64", size: payload.length, truncated: cut };
}

export function messageView(m: Message, max: number): Record<string, unknown> {
  return { topic: m.topic, qos: m.qos, retain: m.retain, expiresAt: iso(m.expiresAt), ...payloadView(m.payload, max) };
}

export function clientView(c: Connection): Record<string, unknown> {
  const s = c.session;
  return {
    id: c.clientId,
    username: c.username ?? null,
    address: c.remote,
    listener: c.listener.url,
    protocol: c.listener.protocol,
    version: c.version,
    keepalive: c.keepalive,
    connectedAt: iso(c.openedAt),
    persistent: s?.persistent ?? false,
    sessionExpiryInterval: s?.expiryInterval ?? 0,
    subscriptions: s?.subs.size ?? 0,
    inflight: s?.inflight.count ?? 0,
    queued: s?.queue.length ?? 0,
    queuedBytes: s?.queue.bytes ?? 0,
    dropped: s?.dropped ?? 0,
    paused: c.paused,
  };
}

export function sessionView(s: Session): Record<string, unknown> {
  return {
    id: s.id,
    online: s.conn !== null,
    username: s.username ?? null,
    version: s.version,
    persistent: s.persistent,
    expiryInterval: s.expiryInterval,
    expiresAt: iso(s.expiresAt),
    subscriptions: s.subs.size,
    inflight: s.inflight.count,
    queued: s.queue.length,
    queuedBytes: s.queue.bytes,
    dropped: s.dropped,
    willPending: s.will !== null,
  };
}

export function subscriptionView(sub: Subscription<Session>): Record<string, unknown> {
  return {
    clientId: sub.session.id,
    filter: sub.filter,
    qos: sub.qos,
    noLocal: sub.noLocal,
    retainAsPublished: sub.rap,
    retainHandling: sub.rh,
    subscriptionId: sub.subId === 0 ? null : sub.subId,
    group: sub.group,
  };
}

export interface Page {
  offset: number;
  limit: number;
}

export const MAX_PAGE = 1000;
const DEFAULT_PAGE = 100;

/** `?offset=&limit=` (limit 1..1000, default 100), or an error message. */
export function pageOf(url: URL): Page | string {
  const offset = intParam(url, "offset", 0);
  const limit = intParam(url, "limit", DEFAULT_PAGE);
  if (offset === null || offset < 0) return "offset: expected an integer >= 0";
  if (limit === null || limit < 1 || limit > MAX_PAGE) return `limit: expected an integer from 1 to ${MAX_PAGE}`;
  return { offset, limit };
}

function intParam(url: URL, name: string, dflt: number): number | null {
  const v = url.searchParams.get(name);
  if (v === null || v === "") return dflt;
  return /^\d{1,9}$/.test(v) ? Number(v) : null;
}

/** One page of `items` (already filtered and ordered), with the total. */
export function paged<T>(items: readonly T[], page: Page, view: (t: T) => unknown): Record<string, unknown> {
  return { total: items.length, offset: page.offset, limit: page.limit, items: items.slice(page.offset, page.offset + page.limit).map(view) };
}
