/**
 * @module http/api
 * The JSON API under /api/v1: clients (list, one, kick), sessions (online
 * and offline; end one), subscriptions, retained messages (paged, by filter;
 * delete one), publish, stats, and the dashboard's live streams (events,
 * watch). Reads are views built per request (views.ts); changes go through
 * the broker's own operations, so they follow the same rules as MQTT
 * clients' (retain, journal, acknowledge-after-commit).
 */
import { z } from "zod";
import type { Broker } from "../broker.ts";
import { State } from "../conn-state.ts";
import { Message } from "../message.ts";
import { RC } from "../protocol/reason-codes.ts";
import { Routed } from "../router.ts";
import { isValidFilter, parseSharedFilter, topicNameError } from "../protocol/validate.ts";
import { BRIDGE_SESSION_PREFIX, type Session } from "../session.ts";
import type { Subscription } from "../topic-tree.ts";
import { VERSION } from "../version.ts";
import { type HttpContext, json, jsonError } from "./app.ts";
import { HISTORY_SECONDS, liveHub, MAX_STREAMS, MAX_TOPICS, TOPIC_PREVIEW } from "./live.ts";
import { SseStream } from "./sse.ts";
import { clientView, messageView, pageOf, paged, sessionView, subscriptionView } from "./views.ts";

const PREFIX = "/api/v1";
/** Payload bytes of a retained message in a list; GET ?topic= gives the whole payload. */
const LIST_PREVIEW = 1024;
/** How long POST /publish waits for the store to commit a QoS 1/2 message before answering 503. */
const COMMIT_WAIT_MS = 10_000;

type Handler = (ctx: HttpContext, req: Request, arg: string) => Response | Promise<Response>;

interface Route {
  method: string;
  /** Path after /api/v1; a trailing "/:" takes the rest of the path (URL-decoded) as the argument. */
  path: string;
  run: Handler;
}

const ROUTES: Route[] = [
  { method: "GET", path: "", run: index },
  { method: "GET", path: "/stats", run: stats },
  { method: "GET", path: "/clients", run: listClients },
  { method: "GET", path: "/clients/:", run: oneClient },
  { method: "DELETE", path: "/clients/:", run: kickClient },
  { method: "GET", path: "/sessions", run: listSessions },
  { method: "GET", path: "/sessions/:", run: oneSession },
  { method: "DELETE", path: "/sessions/:", run: endSession },
  { method: "GET", path: "/subscriptions", run: listSubscriptions },
  { method: "GET", path: "/retained", run: listRetained },
  { method: "DELETE", path: "/retained", run: deleteRetained },
  { method: "POST", path: "/publish", run: publish },
  { method: "GET", path: "/bridges", run: bridges },
  { method: "GET", path: "/topics", run: topics },
  { method: "GET", path: "/history", run: history },
  { method: "GET", path: "/events", run: events },
  { method: "GET", path: "/watch", run: watch },
];

export function handleApi(ctx: HttpContext, req: Request): Response | Promise<Response> {
  const rest = ctx.url.pathname.slice(PREFIX.length).replace(/\/$/, "");
  let allowed: string[] = [];
  for (const r of ROUTES) {
    let arg = "";
    if (r.path.endsWith("/:")) {
      const base = r.path.slice(0, -1);
      if (!rest.startsWith(base) || rest.length === base.length) continue;
      try {
        arg = decodeURIComponent(rest.slice(base.length));
      } catch {
        return jsonError(400, "the path is not valid percent-encoding");
      }
    } else if (rest !== r.path) {
      continue;
    }
    if (r.method === req.method || (r.method === "GET" && req.method === "HEAD")) return r.run(ctx, req, arg);
    allowed.push(r.method);
  }
  if (allowed.length > 0) return new Response(JSON.stringify({ error: `method not allowed; use ${allowed.join(", ")}` }), { status: 405, headers: { Allow: allowed.join(", "), "Content-Type": "application/json; charset=utf-8" } });
  return jsonError(404, "no such API endpoint (GET /api/v1 lists them)");
}

function index(): Response {
  return json({ version: VERSION, endpoints: ROUTES.map((r) => `${r.method} ${PREFIX}${r.path.replace(/:$/, ":id")}`) });
}

function stats(ctx: HttpContext): Response {
  const b = ctx.broker;
  return json({ version: VERSION, startedAt: new Date(b.metrics.startedAt).toISOString(), ...liveHub(b).stats(), ...b.stats(), listeners: b.listenerInfos.map((l) => ({ protocol: l.protocol, url: l.url })) });
}

/** Every bridge: state, queue, counters, last error (bridge/bridge.ts BridgeStatus). */
function bridges(ctx: HttpContext): Response {
  return json({ bridges: ctx.broker.bridgeStatus().map((s) => ({ ...s, connectedSince: s.connectedSince === 0 ? null : new Date(s.connectedSince).toISOString() })) });
}

// ---- clients and sessions ----------------------------------------------------

/** Sessions whose Client ID or user name contains `query` (`?q=`, case-insensitive), sorted by Client ID. */
function sessionsMatching(b: Broker, query: string, online: boolean | null): Session[] {
  const q = query.toLowerCase();
  const out: Session[] = [];
  for (const s of b.sessions.values()) {
    if (online !== null && (s.conn !== null) !== online) continue;
    if (q !== "" && !s.id.toLowerCase().includes(q) && !(s.username ?? "").toLowerCase().includes(q)) continue;
    out.push(s);
  }
  return out.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

function listClients(ctx: HttpContext): Response {
  const page = pageOf(ctx.url);
  if (typeof page === "string") return jsonError(400, page);
  return json(paged(sessionsMatching(ctx.broker, ctx.url.searchParams.get("q") ?? "", true), page, (s) => clientView(s.conn!)));
}

function onlineSession(b: Broker, id: string): Session | null {
  const s = b.sessions.get(id);
  return s !== undefined && s.conn !== null && s.conn.state === State.Active ? s : null;
}

function oneClient(ctx: HttpContext, _req: Request, id: string): Response {
  const s = onlineSession(ctx.broker, id);
  if (s === null) return jsonError(404, `no client ${JSON.stringify(id)} is connected`);
  return json({ ...clientView(s.conn!), subscriptionList: [...s.subs.values()].map(subscriptionView) });
}

/** Close the client's connection: v5 gets DISCONNECT 0x98 (Administrative action); the will is due as for any server-side close. */
function kickClient(ctx: HttpContext, _req: Request, id: string): Response {
  const b = ctx.broker;
  const s = onlineSession(b, id);
  if (s === null) return jsonError(404, `no client ${JSON.stringify(id)} is connected`);
  s.conn!.close("closed through the HTTP API", RC.ADMINISTRATIVE_ACTION);
  b.endBatch();
  return json({ kicked: id, sessionKept: !s.ended });
}

function listSessions(ctx: HttpContext): Response {
  const page = pageOf(ctx.url);
  if (typeof page === "string") return jsonError(400, page);
  const state = ctx.url.searchParams.get("state");
  if (state !== null && state !== "online" && state !== "offline") return jsonError(400, "state: expected online or offline");
  return json(paged(sessionsMatching(ctx.broker, ctx.url.searchParams.get("q") ?? "", state === null ? null : state === "online"), page, sessionView));
}

function oneSession(ctx: HttpContext, _req: Request, id: string): Response {
  const s = ctx.broker.sessions.get(id);
  if (s === undefined) return jsonError(404, `no session ${JSON.stringify(id)}`);
  return json({ ...sessionView(s), subscriptionList: [...s.subs.values()].map(subscriptionView) });
}

/** Discard a session, online or not (its client, if connected, is closed first with 0x98). */
function endSession(ctx: HttpContext, _req: Request, id: string): Response {
  const b = ctx.broker;
  const s = b.sessions.get(id);
  if (s === undefined) return jsonError(404, `no session ${JSON.stringify(id)}`);
  if (s.id.startsWith(BRIDGE_SESSION_PREFIX)) return jsonError(409, "this is a bridge's session (its outbound queue); remove the bridge from the config instead");
  if (s.conn !== null) s.conn.close("session ended through the HTTP API", RC.ADMINISTRATIVE_ACTION);
  b.endSession(s);
  b.endBatch();
  return json({ ended: id });
}

function listSubscriptions(ctx: HttpContext): Response {
  const page = pageOf(ctx.url);
  if (typeof page === "string") return jsonError(400, page);
  const client = ctx.url.searchParams.get("client");
  const q = ctx.url.searchParams.get("q") ?? "";
  const subs: Subscription<Session>[] = [];
  const sessions = client !== null ? [ctx.broker.sessions.get(client)].filter((s) => s !== undefined) : sessionsMatching(ctx.broker, "", null);
  for (const s of sessions) for (const sub of s.subs.values()) if (q === "" || sub.filter.includes(q)) subs.push(sub);
  return json(paged(subs, page, subscriptionView));
}

// ---- retained messages -------------------------------------------------------

function listRetained(ctx: HttpContext): Response {
  const b = ctx.broker;
  const topic = ctx.url.searchParams.get("topic");
  if (topic !== null) {
    const m = b.retainedMessage(topic);
    if (m === null || m.expired(Date.now())) return jsonError(404, `no retained message on ${JSON.stringify(topic)}`);
    return json(messageView(m, m.payload.length));
  }
  const page = pageOf(ctx.url);
  if (typeof page === "string") return jsonError(400, page);
  const filter = ctx.url.searchParams.get("filter") ?? "#";
  if (!isValidFilter(filter, b.limits.maxTopicLevels) || parseSharedFilter(filter, b.limits.maxTopicLevels) !== null) return jsonError(400, `filter: ${JSON.stringify(filter)} is not a valid topic filter`);
  const now = Date.now();
  const found: Message[] = [];
  for (const m of b.retainedMatching(filter)) if (m !== null && !m.expired(now)) found.push(m);
  found.sort((x, y) => (x.topic < y.topic ? -1 : x.topic > y.topic ? 1 : 0));
  return json({ filter, ...paged(found, page, (m) => messageView(m, LIST_PREVIEW)) });
}

function deleteRetained(ctx: HttpContext): Response {
  const topic = ctx.url.searchParams.get("topic");
  if (topic === null || topic === "") return jsonError(400, "topic: the query parameter ?topic= is required");
  if (!ctx.broker.clearRetained(topic)) return jsonError(404, `no retained message on ${JSON.stringify(topic)}`);
  ctx.broker.endBatch();
  return json({ deleted: topic });
}

// ---- publish -----------------------------------------------------------------

const PublishBody = z.strictObject({
  topic: z.string().min(1),
  payload: z.string().default(""),
  encoding: z.enum(["utf8", "base64"]).default("utf8"),
  qos: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(0),
  retain: z.boolean().default(false),
  /** v5 Message Expiry Interval, seconds. */
  messageExpiryInterval: z.number().int().min(1).max(0xffffffff).optional(),
});

/**
 * Publish as the broker (origin ""), not subject to a client's ACL: the
 * API is the administrator's. With "ack" durability and a file store, a
 * QoS 1/2 or retained message is answered only once it is committed.
 */
async function publish(ctx: HttpContext, req: Request): Promise<Response> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^application\/json\b/i.test(type)) return jsonError(415, "send the message as application/json");
  let input: unknown;
  try {
    input = await req.json();
  } catch {
    return jsonError(400, "the body is not valid JSON");
  }
  const parsed = PublishBody.safeParse(input);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    return jsonError(400, `${i.path.join(".") || "body"}: ${i.message}`);
  }
  const p = parsed.data;
  const b = ctx.broker;
  const err = topicNameError(p.topic, b.limits.maxTopicLevels);
  if (err !== 0 || p.topic.startsWith("$")) return jsonError(400, `topic: ${JSON.stringify(p.topic)} is not a topic name a client may publish to`);
  if (p.encoding === "base64" && !/^[A-Za-z0-9+/]*={0,2}$/.test(p.payload)) return jsonError(400, "payload: not valid base64");
  const payload = Buffer.from(p.payload, p.encoding);
  if (payload.length > b.limits.maxPacketSize) return jsonError(413, `payload: ${payload.length} bytes is more than limits.maxPacketSize`);
  const expiresAt = p.messageExpiryInterval === undefined ? 0 : Date.now() + p.messageExpiryInterval * 1000;
  const j = b.journal;
  const routed = b.publish(new Message(p.topic, payload, p.qos, p.retain, null, expiresAt, ""), null);
  const needs = j.openHasOps ? j.openEpoch : 0;
  b.endBatch();
  if (b.holdAcks && needs > 0) {
    const end = Date.now() + COMMIT_WAIT_MS;
    while (j.committedEpoch < needs) {
      if (Date.now() > end) return jsonError(503, "the store did not commit the message in time");
      await new Promise((r) => setTimeout(r, 1));
    }
  }
  return json({ topic: p.topic, qos: p.qos, retain: p.retain, size: payload.length, routed: routed === Routed.Delivered ? "delivered" : routed === Routed.NoMatch ? "no matching subscriber" : "dropped by every subscriber" });
}

// ---- dashboard data and streams ---------------------------------------------

function topics(ctx: HttpContext): Response {
  const hub = liveHub(ctx.broker);
  // Retained topics the live table has not seen (published before the page opened) come from the store.
  const list = hub.topicList();
  const seen = new Set(list.map((t) => t.topic as string));
  const now = Date.now();
  for (const filter of ["#", "$SYS/#"]) {
    for (const m of ctx.broker.retainedMatching(filter)) {
      if (m === null || m.expired(now) || seen.has(m.topic) || list.length >= MAX_TOPICS) continue;
      list.push({ ...messageView(m, TOPIC_PREVIEW), at: null, count: 0 });
    }
  }
  return json({ items: list, untracked: hub.untracked });
}

function history(ctx: HttpContext): Response {
  return json({ seconds: HISTORY_SECONDS, samples: liveHub(ctx.broker).history });
}

/** The dashboard's stream: a hello with the recent events, then stats each second, client events, changed topics. */
function events(ctx: HttpContext, req: Request): Response {
  const hub = liveHub(ctx.broker);
  if (hub.full) return tooManyStreams();
  const s = new SseStream();
  ctx.request.noTimeout(); // a stream outlives the server's idle timeout
  hub.addStream(s);
  s.send("hello", { version: VERSION, events: hub.events, stats: hub.stats() });
  return s.response;
}

/** `?filter=`: every message matching it, as it is published (capped per second; the rest counted as "skipped"). */
function watch(ctx: HttpContext, req: Request): Response {
  const filter = ctx.url.searchParams.get("filter") ?? "";
  const max = ctx.broker.limits.maxTopicLevels;
  if (!isValidFilter(filter, max) || parseSharedFilter(filter, max) !== null) return jsonError(400, `filter: ${JSON.stringify(filter)} is not a valid topic filter`);
  const hub = liveHub(ctx.broker);
  if (hub.full) return tooManyStreams();
  const s = new SseStream();
  ctx.request.noTimeout();
  hub.addWatch(s, filter);
  s.send("watching", { filter });
  return s.response;
}

function tooManyStreams(): Response {
  return new Response(JSON.stringify({ error: `${MAX_STREAMS} event streams are open already; close one` }), { status: 503, headers: { "Content-Type": "application/json; charset=utf-8", "Retry-After": "5" } });
}
