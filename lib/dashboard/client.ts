/**
 * @module dashboard/client
 * The dashboard's script, run in the browser: one EventSource on
 * /api/v1/events (stats each second, client events, changed topics), the
 * client list from /api/v1/clients, the 15-minute rate chart on a canvas,
 * the topic tree, publish (POST /api/v1/publish), kick (DELETE
 * /api/v1/clients/:id) and watch (EventSource /api/v1/watch?filter=).
 *
 * Served transpiled, never bundled: it imports nothing. Every value from
 * the broker reaches the page as textContent, never as HTML.
 */

interface Sample {
  t: number;
  msgsIn: number;
  msgsOut: number;
  bytesIn: number;
  bytesOut: number;
  clients: number;
}

interface Stats {
  uptime: number;
  clients: number;
  sessions: number;
  subscriptions: number;
  retained: number;
  dropped: number;
  takeovers: number;
  queued: number;
  sample: Sample | null;
}

interface TopicInfo {
  topic: string;
  qos: number;
  retain: boolean;
  at: string | null;
  count: number;
  payload: string;
  encoding: "utf8" | "base64";
  size: number;
  truncated: boolean;
}

interface ClientInfo {
  id: string;
  username: string | null;
  address: string;
  version: number;
  keepalive: number;
  connectedAt: string | null;
  inflight: number;
  queued: number;
}

interface BrokerEvent {
  type: string;
  at: string;
  client: string;
  address?: string;
  reason?: string | null;
  reasonCode?: number | null;
  why?: string | null;
  oldAddress?: string;
  newAddress?: string;
  resumed?: boolean;
}

const HISTORY = 900;
const MAX_EVENTS = 200;
const MAX_WATCHED = 200;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

function el(tag: string, text?: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls !== undefined) e.className = cls;
  return e;
}

function fmt(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

function duration(s: number): string {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

function time(isoText: string | null): string {
  return isoText === null ? "" : new Date(isoText).toLocaleTimeString();
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; data: Record<string, unknown> }> {
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let data: Record<string, unknown> = {};
  try {
    data = await res.json();
  } catch {
    // an empty or non-JSON answer
  }
  return { status: res.status, data };
}

// ---- rates chart ----------------------------------------------------------

const samples: Sample[] = [];

function addSample(s: Sample | null): void {
  if (s === null) return;
  if (samples.length > 0 && samples[samples.length - 1]!.t >= s.t) return;
  samples.push(s);
  if (samples.length > HISTORY) samples.shift();
}

function drawChart(): void {
  const canvas = $<HTMLCanvasElement>("chart");
  const ctx = canvas.getContext("2d");
  if (ctx === null) return;
  const bytes = $<HTMLSelectElement>("rate-unit").value === "bytes";
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const now = samples.length > 0 ? samples[samples.length - 1]!.t : Math.floor(Date.now() / 1000);
  const ins = samples.map((s) => (bytes ? s.bytesIn : s.msgsIn));
  const outs = samples.map((s) => (bytes ? s.bytesOut : s.msgsOut));
  const max = Math.max(1, ...ins, ...outs);
  ctx.strokeStyle = "#2a323c";
  ctx.lineWidth = 1;
  for (let i = 1; i < 4; i++) {
    ctx.beginPath();
    ctx.moveTo(0, (h * i) / 4);
    ctx.lineTo(w, (h * i) / 4);
    ctx.stroke();
  }
  const x = (t: number) => w - ((now - t) / HISTORY) * w;
  const y = (v: number) => h - 4 - (v / max) * (h - 8);
  for (const [series, color] of [[ins, "#4fb3ff"], [outs, "#ffb347"]] as const) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    series.forEach((v, i) => {
      const px = x(samples[i]!.t);
      if (i === 0) ctx.moveTo(px, y(v));
      else ctx.lineTo(px, y(v));
    });
    ctx.stroke();
  }
  $("chart-max").textContent = `peak ${fmt(max)} ${bytes ? "bytes" : "messages"} / s`;
}

// ---- counters -------------------------------------------------------------

function showStats(s: Stats): void {
  $("c-clients").textContent = fmt(s.clients);
  $("c-sessions").textContent = fmt(s.sessions);
  $("c-subscriptions").textContent = fmt(s.subscriptions);
  $("c-retained").textContent = fmt(s.retained);
  $("c-queued").textContent = fmt(s.queued);
  $("c-dropped").textContent = fmt(s.dropped);
  $("c-takeovers").textContent = fmt(s.takeovers);
  $("c-uptime").textContent = duration(s.uptime);
  if (s.sample !== null) {
    $("c-in").textContent = fmt(s.sample.msgsIn);
    $("c-out").textContent = fmt(s.sample.msgsOut);
  }
  addSample(s.sample);
  drawChart();
}

// ---- clients --------------------------------------------------------------

let clientTimer: ReturnType<typeof setTimeout> | null = null;

/** Reload the client list soon (coalesces bursts of connects). */
function refreshClients(delay = 150): void {
  if (clientTimer !== null) return;
  clientTimer = setTimeout(() => {
    clientTimer = null;
    void loadClients();
  }, delay);
}

async function loadClients(): Promise<void> {
  const q = $<HTMLInputElement>("client-q").value;
  const { status, data } = await api("GET", `/clients?limit=200&q=${encodeURIComponent(q)}`);
  if (status !== 200) return;
  const rows = $("client-rows");
  rows.replaceChildren();
  for (const c of data.items as ClientInfo[]) {
    const tr = document.createElement("tr");
    tr.dataset.client = c.id;
    tr.append(el("td", c.id), el("td", c.username ?? ""), el("td", c.address), el("td", String(c.version)), el("td", c.keepalive ? `${c.keepalive}s` : "off"), el("td", time(c.connectedAt)), el("td", String(c.inflight), "num"), el("td", String(c.queued), "num"));
    const td = el("td");
    const b = el("button", "Kick", "kick") as HTMLButtonElement;
    b.title = `close ${c.id}'s connection (v5: DISCONNECT 0x98, administrative action)`;
    b.dataset.kick = c.id;
    b.addEventListener("click", () => void kick(c.id, b));
    td.append(b);
    tr.append(td);
    rows.append(tr);
  }
  const total = data.total as number;
  $("client-more").textContent = total > 200 ? `showing 200 of ${total}; filter to narrow` : "";
}

async function kick(id: string, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  const { status, data } = await api("DELETE", `/clients/${encodeURIComponent(id)}`);
  if (status !== 200) {
    button.disabled = false;
    button.textContent = String(data.error ?? status);
  }
  refreshClients(0);
}

// ---- events ---------------------------------------------------------------

function eventText(e: BrokerEvent): string {
  switch (e.type) {
    case "connected":
      return `${e.client} connected from ${e.address}${e.resumed ? " (session resumed)" : ""}`;
    case "disconnected":
      return `${e.client} disconnected: ${e.why ?? ""}${e.reasonCode !== null && e.reasonCode !== undefined ? ` (0x${e.reasonCode.toString(16).padStart(2, "0")} ${e.reason})` : ""}`;
    case "takeover":
      return `${e.client} taken over: ${e.oldAddress} → ${e.newAddress} (0x8e ${e.reason})`;
    case "refused":
      return `${e.client || "(no Client ID)"} refused from ${e.address}: 0x${(e.reasonCode ?? 0).toString(16).padStart(2, "0")} ${e.reason}${e.why ? `, ${e.why}` : ""}`;
    default:
      return `${e.type} ${e.client}`;
  }
}

function addEvent(e: BrokerEvent): void {
  const list = $("event-list");
  const li = el("li");
  li.dataset.type = e.type;
  li.append(el("span", `${time(e.at)} `, "muted"), el("span", eventText(e), e.type === "connected" ? "ok" : e.type === "disconnected" ? "" : "bad"));
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild!.remove();
}

// ---- topic tree -----------------------------------------------------------

interface Node {
  children: Map<string, Node>;
  info: TopicInfo | null;
  li: HTMLLIElement | null;
}

const topics = new Map<string, TopicInfo>();

function preview(t: TopicInfo): string {
  if (t.encoding === "base64") return `<${t.size} bytes, binary>`;
  const text = t.payload.length > 120 ? `${t.payload.slice(0, 120)}…` : t.payload;
  return t.truncated ? `${text}…` : text;
}

let treeTimer: ReturnType<typeof setTimeout> | null = null;

function updateTopics(list: TopicInfo[]): void {
  for (const t of list) topics.set(t.topic, t);
  if (treeTimer === null) treeTimer = setTimeout(renderTree, 100);
}

/** Which branches are open, by path, so a redraw keeps them. */
const open = new Set<string>();

function renderTree(): void {
  treeTimer = null;
  const q = $<HTMLInputElement>("topic-q").value;
  const root: Node = { children: new Map(), info: null, li: null };
  let shown = 0;
  for (const t of [...topics.values()].sort((a, b) => (a.topic < b.topic ? -1 : 1))) {
    if (q !== "" && !t.topic.includes(q)) continue;
    shown++;
    let n = root;
    for (const level of t.topic.split("/")) {
      let c = n.children.get(level);
      if (c === undefined) n.children.set(level, (c = { children: new Map(), info: null, li: null }));
      n = c;
    }
    n.info = t;
  }
  const ul = $("topic-tree");
  // A small tree opens fully, a filtered one too; a large one opens its first level.
  ul.replaceChildren(...renderChildren(root, "", q !== "" || shown <= 60));
  $("topic-note").textContent = shown === 0 ? "no topics yet: publish something" : `${shown} topics`;
}

function renderChildren(n: Node, path: string, expand: boolean): HTMLLIElement[] {
  const out: HTMLLIElement[] = [];
  for (const [name, c] of n.children) {
    const full = path === "" ? name : `${path}/${name}`;
    const li = document.createElement("li");
    const label = el("span", name === "" ? "(empty level)" : name);
    const line = el("span");
    line.append(label);
    if (c.info !== null) {
      li.dataset.topic = c.info.topic;
      const m = el("span", "", "msg");
      m.append(el("span", preview(c.info), "payload"), el("span", `QoS ${c.info.qos}`, "tag"));
      if (c.info.retain) m.append(el("span", "retained", "tag"));
      if (c.info.at !== null) m.append(el("span", time(c.info.at), "tag"));
      line.append(m);
    }
    if (c.children.size > 0) {
      const d = document.createElement("details");
      // $SYS stays closed unless opened (or searched): it is the broker's own noise.
      d.open = open.has(full) || (expand && (!full.startsWith("$SYS") || $<HTMLInputElement>("topic-q").value !== "")) || (path === "" && name !== "$SYS");
      d.addEventListener("toggle", () => (d.open ? open.add(full) : open.delete(full)));
      if (d.open) open.add(full);
      const s = document.createElement("summary");
      s.append(line);
      const sub = document.createElement("ul");
      sub.append(...renderChildren(c, full, expand));
      d.append(s, sub);
      li.append(d);
    } else {
      li.append(line);
    }
    out.push(li);
  }
  return out;
}

// ---- publish and watch ----------------------------------------------------

async function publish(ev: Event): Promise<void> {
  ev.preventDefault();
  const body = {
    topic: $<HTMLInputElement>("pub-topic").value,
    payload: $<HTMLTextAreaElement>("pub-payload").value,
    qos: Number($<HTMLSelectElement>("pub-qos").value),
    retain: $<HTMLInputElement>("pub-retain").checked,
  };
  const { status, data } = await api("POST", "/publish", body);
  const out = $("pub-result");
  out.textContent = status === 200 ? `published (${data.routed})` : `refused: ${data.error ?? status}`;
  out.className = status === 200 ? "ok" : "bad";
}

let watching: EventSource | null = null;

function watch(ev: Event): void {
  ev.preventDefault();
  const state = $("sub-state");
  const button = $<HTMLButtonElement>("sub-button");
  if (watching !== null) {
    watching.close();
    watching = null;
    button.textContent = "Watch";
    state.textContent = "stopped";
    return;
  }
  const filter = $<HTMLInputElement>("sub-filter").value;
  const list = $("watch-list");
  list.replaceChildren();
  const es = new EventSource(`/api/v1/watch?filter=${encodeURIComponent(filter)}`);
  watching = es;
  button.textContent = "Stop";
  state.textContent = "connecting…";
  es.addEventListener("watching", () => (state.textContent = `watching ${filter}`));
  es.addEventListener("message", (e) => {
    const m = JSON.parse((e as MessageEvent).data) as TopicInfo;
    const li = el("li");
    li.dataset.topic = m.topic;
    li.append(el("span", `${time(m.at)} `, "muted"), el("span", `${m.topic} `), el("span", preview(m), "payload"), el("span", `QoS ${m.qos}`, "tag"));
    if (m.retain) li.append(el("span", "retain", "tag"));
    list.prepend(li);
    while (list.children.length > MAX_WATCHED) list.lastElementChild!.remove();
  });
  es.addEventListener("skipped", (e) => (state.textContent = `watching ${filter}: ${JSON.parse((e as MessageEvent).data).count} messages skipped (over 200/s)`));
  es.onerror = () => (state.textContent = es.readyState === EventSource.CLOSED ? "refused (invalid filter?)" : "reconnecting…");
}

// ---- start ----------------------------------------------------------------

async function start(): Promise<void> {
  $<HTMLSelectElement>("rate-unit").addEventListener("change", drawChart);
  $("client-q").addEventListener("input", () => refreshClients());
  $("topic-q").addEventListener("input", () => updateTopics([]));
  $("pub-form").addEventListener("submit", (e) => void publish(e));
  $("sub-form").addEventListener("submit", watch);
  const [hist, tops] = await Promise.all([api("GET", "/history"), api("GET", "/topics")]);
  for (const s of (hist.data.samples as Sample[] | undefined) ?? []) addSample(s);
  drawChart();
  updateTopics((tops.data.items as TopicInfo[] | undefined) ?? []);
  await loadClients();
  const live = $("live");
  const es = new EventSource("/api/v1/events");
  es.addEventListener("hello", (e) => {
    const h = JSON.parse((e as MessageEvent).data) as { version: string; events: BrokerEvent[]; stats: Stats };
    $("version").textContent = h.version;
    $("event-list").replaceChildren();
    for (const ev of h.events) addEvent(ev);
    showStats(h.stats);
    live.textContent = "live";
    live.className = "live on";
    refreshClients(0);
  });
  es.addEventListener("stats", (e) => showStats(JSON.parse((e as MessageEvent).data) as Stats));
  es.addEventListener("topics", (e) => updateTopics(JSON.parse((e as MessageEvent).data) as TopicInfo[]));
  es.addEventListener("event", (e) => {
    addEvent(JSON.parse((e as MessageEvent).data) as BrokerEvent);
    refreshClients();
  });
  es.onerror = () => {
    live.textContent = "reconnecting…";
    live.className = "live off";
  };
  // Keep alive and in-flight counts move without connect events.
  setInterval(() => refreshClients(0), 5000);
}

void start();
