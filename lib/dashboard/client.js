// @ts-check
/**
 * @module dashboard/client
 * The dashboard's script, run in the browser: one EventSource on
 * /api/v1/events (stats each second, client events, changed topics), the
 * client list from /api/v1/clients, the 15-minute rate chart on a canvas,
 * the topic tree, publish (POST /api/v1/publish), kick (DELETE
 * /api/v1/clients/:id) and watch (EventSource /api/v1/watch?filter=).
 *
 * Plain JavaScript, served as it is on disk (http/dashboard.ts): no
 * transpiler, no bundler, it imports nothing. The types are JSDoc, checked
 * by `tsc --noEmit -p .` (`// @ts-check`). Every value from the broker
 * reaches the page as textContent, never as HTML.
 */

/**
 * @typedef {object} Sample
 * @property {number} t
 * @property {number} msgsIn
 * @property {number} msgsOut
 * @property {number} bytesIn
 * @property {number} bytesOut
 * @property {number} clients
 */

/**
 * @typedef {object} Stats
 * @property {number} uptime
 * @property {number} clients
 * @property {number} sessions
 * @property {number} subscriptions
 * @property {number} retained
 * @property {number} dropped
 * @property {number} takeovers
 * @property {number} queued
 * @property {Sample | null} sample
 */

/**
 * @typedef {object} TopicInfo
 * @property {string} topic
 * @property {number} qos
 * @property {boolean} retain
 * @property {string | null} at
 * @property {number} count
 * @property {string} payload
 * @property {"utf8" | "base64"} encoding
 * @property {number} size
 * @property {boolean} truncated
 */

/**
 * @typedef {object} ClientInfo
 * @property {string} id
 * @property {string | null} username
 * @property {string} address
 * @property {number} version
 * @property {number} keepalive
 * @property {string | null} connectedAt
 * @property {number} inflight
 * @property {number} queued
 */

/**
 * @typedef {object} BrokerEvent
 * @property {string} type
 * @property {string} at
 * @property {string} client
 * @property {string} [address]
 * @property {string | null} [reason]
 * @property {number | null} [reasonCode]
 * @property {string | null} [why]
 * @property {string} [oldAddress]
 * @property {string} [newAddress]
 * @property {boolean} [resumed]
 */

/**
 * The first message on /api/v1/events.
 * @typedef {object} Hello
 * @property {string} version
 * @property {BrokerEvent[]} events
 * @property {Stats} stats
 */

const HISTORY = 900;
const MAX_EVENTS = 200;
const MAX_WATCHED = 200;

/**
 * The element with this id; cast it where a subtype is needed.
 * @param {string} id
 * @returns {HTMLElement}
 */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @param {string} tag
 * @param {string} [text]
 * @param {string} [cls]
 * @returns {HTMLElement}
 */
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls !== undefined) e.className = cls;
  return e;
}

/**
 * @param {number} n
 * @returns {string}
 */
function fmt(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(Math.round(n));
}

/**
 * @param {number} s seconds
 * @returns {string}
 */
function duration(s) {
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : `${m}m ${s % 60}s`;
}

/**
 * @param {string | null} isoText
 * @returns {string}
 */
function time(isoText) {
  return isoText === null ? "" : new Date(isoText).toLocaleTimeString();
}

/**
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<{ status: number; data: Record<string, unknown> }>}
 */
async function api(method, path, body) {
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  /** @type {Record<string, unknown>} */
  let data = {};
  try {
    data = await res.json();
  } catch {
    // an empty or non-JSON answer
  }
  return { status: res.status, data };
}

/**
 * The data of a server-sent event, parsed.
 * @param {Event} e
 * @returns {any}
 */
function eventData(e) {
  return JSON.parse(/** @type {MessageEvent} */ (e).data);
}

// ---- rates chart ----------------------------------------------------------

/** @type {Sample[]} */
const samples = [];

/** @param {Sample | null} s */
function addSample(s) {
  if (s === null) return;
  if (samples.length > 0 && samples[samples.length - 1].t >= s.t) return;
  samples.push(s);
  if (samples.length > HISTORY) samples.shift();
}

function drawChart() {
  const canvas = /** @type {HTMLCanvasElement} */ ($("chart"));
  const ctx = canvas.getContext("2d");
  if (ctx === null) return;
  const bytes = /** @type {HTMLSelectElement} */ ($("rate-unit")).value === "bytes";
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const now = samples.length > 0 ? samples[samples.length - 1].t : Math.floor(Date.now() / 1000);
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
  /** @param {number} t */
  const x = (t) => w - ((now - t) / HISTORY) * w;
  /** @param {number} v */
  const y = (v) => h - 4 - (v / max) * (h - 8);
  /** @type {[number[], string][]} */
  const lines = [[ins, "#4fb3ff"], [outs, "#ffb347"]];
  for (const [series, color] of lines) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    series.forEach((v, i) => {
      const px = x(samples[i].t);
      if (i === 0) ctx.moveTo(px, y(v));
      else ctx.lineTo(px, y(v));
    });
    ctx.stroke();
  }
  $("chart-max").textContent = `peak ${fmt(max)} ${bytes ? "bytes" : "messages"} / s`;
}

// ---- counters -------------------------------------------------------------

/** @param {Stats} s */
function showStats(s) {
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

/** @type {ReturnType<typeof setTimeout> | null} */
let clientTimer = null;

/**
 * Reload the client list soon (coalesces bursts of connects).
 * @param {number} [delay]
 */
function refreshClients(delay = 150) {
  if (clientTimer !== null) return;
  clientTimer = setTimeout(() => {
    clientTimer = null;
    void loadClients();
  }, delay);
}

async function loadClients() {
  const q = /** @type {HTMLInputElement} */ ($("client-q")).value;
  const { status, data } = await api("GET", `/clients?limit=200&q=${encodeURIComponent(q)}`);
  if (status !== 200) return;
  const rows = $("client-rows");
  rows.replaceChildren();
  for (const c of /** @type {ClientInfo[]} */ (data.items)) {
    const tr = document.createElement("tr");
    tr.dataset.client = c.id;
    tr.append(el("td", c.id), el("td", c.username ?? ""), el("td", c.address), el("td", String(c.version)), el("td", c.keepalive ? `${c.keepalive}s` : "off"), el("td", time(c.connectedAt)), el("td", String(c.inflight), "num"), el("td", String(c.queued), "num"));
    const td = el("td");
    const b = /** @type {HTMLButtonElement} */ (el("button", "Kick", "kick"));
    b.title = `close ${c.id}'s connection (v5: DISCONNECT 0x98, administrative action)`;
    b.dataset.kick = c.id;
    b.addEventListener("click", () => void kick(c.id, b));
    td.append(b);
    tr.append(td);
    rows.append(tr);
  }
  const total = /** @type {number} */ (data.total);
  $("client-more").textContent = total > 200 ? `showing 200 of ${total}; filter to narrow` : "";
}

/**
 * @param {string} id
 * @param {HTMLButtonElement} button
 */
async function kick(id, button) {
  button.disabled = true;
  const { status, data } = await api("DELETE", `/clients/${encodeURIComponent(id)}`);
  if (status !== 200) {
    button.disabled = false;
    button.textContent = String(data.error ?? status);
  }
  refreshClients(0);
}

// ---- events ---------------------------------------------------------------

/**
 * @param {BrokerEvent} e
 * @returns {string}
 */
function eventText(e) {
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

/** @param {BrokerEvent} e */
function addEvent(e) {
  const list = $("event-list");
  const li = el("li");
  li.dataset.type = e.type;
  li.append(el("span", `${time(e.at)} `, "muted"), el("span", eventText(e), e.type === "connected" ? "ok" : e.type === "disconnected" ? "" : "bad"));
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild?.remove();
}

// ---- topic tree -----------------------------------------------------------

/**
 * One level of the topic tree.
 * @typedef {object} TreeNode
 * @property {Map<string, TreeNode>} children
 * @property {TopicInfo | null} info
 * @property {HTMLLIElement | null} li
 */

/** @type {Map<string, TopicInfo>} */
const topics = new Map();

/**
 * @param {TopicInfo} t
 * @returns {string}
 */
function preview(t) {
  if (t.encoding === "base64") return `<${t.size} bytes, binary>`;
  const text = t.payload.length > 120 ? `${t.payload.slice(0, 120)}…` : t.payload;
  return t.truncated ? `${text}…` : text;
}

/** @type {ReturnType<typeof setTimeout> | null} */
let treeTimer = null;

/** @param {TopicInfo[]} list */
function updateTopics(list) {
  for (const t of list) topics.set(t.topic, t);
  if (treeTimer === null) treeTimer = setTimeout(renderTree, 100);
}

/**
 * Which branches are open, by path, so a redraw keeps them.
 * @type {Set<string>}
 */
const open = new Set();

function renderTree() {
  treeTimer = null;
  const q = /** @type {HTMLInputElement} */ ($("topic-q")).value;
  /** @type {TreeNode} */
  const root = { children: new Map(), info: null, li: null };
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

/**
 * @param {TreeNode} n
 * @param {string} path
 * @param {boolean} expand
 * @returns {HTMLLIElement[]}
 */
function renderChildren(n, path, expand) {
  /** @type {HTMLLIElement[]} */
  const out = [];
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
      d.open = open.has(full) || (expand && (!full.startsWith("$SYS") || /** @type {HTMLInputElement} */ ($("topic-q")).value !== "")) || (path === "" && name !== "$SYS");
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

/** @param {Event} ev */
async function publish(ev) {
  ev.preventDefault();
  const body = {
    topic: /** @type {HTMLInputElement} */ ($("pub-topic")).value,
    payload: /** @type {HTMLTextAreaElement} */ ($("pub-payload")).value,
    qos: Number(/** @type {HTMLSelectElement} */ ($("pub-qos")).value),
    retain: /** @type {HTMLInputElement} */ ($("pub-retain")).checked,
  };
  const { status, data } = await api("POST", "/publish", body);
  const out = $("pub-result");
  out.textContent = status === 200 ? `published (${data.routed})` : `refused: ${data.error ?? status}`;
  out.className = status === 200 ? "ok" : "bad";
}

/** @type {EventSource | null} */
let watching = null;

/** @param {Event} ev */
function watch(ev) {
  ev.preventDefault();
  const state = $("sub-state");
  const button = /** @type {HTMLButtonElement} */ ($("sub-button"));
  if (watching !== null) {
    watching.close();
    watching = null;
    button.textContent = "Watch";
    state.textContent = "stopped";
    return;
  }
  const filter = /** @type {HTMLInputElement} */ ($("sub-filter")).value;
  const list = $("watch-list");
  list.replaceChildren();
  const es = new EventSource(`/api/v1/watch?filter=${encodeURIComponent(filter)}`);
  watching = es;
  button.textContent = "Stop";
  state.textContent = "connecting…";
  es.addEventListener("watching", () => (state.textContent = `watching ${filter}`));
  es.addEventListener("message", (e) => {
    /** @type {TopicInfo} */
    const m = eventData(e);
    const li = el("li");
    li.dataset.topic = m.topic;
    li.append(el("span", `${time(m.at)} `, "muted"), el("span", `${m.topic} `), el("span", preview(m), "payload"), el("span", `QoS ${m.qos}`, "tag"));
    if (m.retain) li.append(el("span", "retain", "tag"));
    list.prepend(li);
    while (list.children.length > MAX_WATCHED) list.lastElementChild?.remove();
  });
  es.addEventListener("skipped", (e) => (state.textContent = `watching ${filter}: ${eventData(e).count} messages skipped (over 200/s)`));
  es.onerror = () => (state.textContent = es.readyState === EventSource.CLOSED ? "refused (invalid filter?)" : "reconnecting…");
}

// ---- start ----------------------------------------------------------------

async function start() {
  $("rate-unit").addEventListener("change", drawChart);
  $("client-q").addEventListener("input", () => refreshClients());
  $("topic-q").addEventListener("input", () => updateTopics([]));
  $("pub-form").addEventListener("submit", (e) => void publish(e));
  $("sub-form").addEventListener("submit", watch);
  const [hist, tops] = await Promise.all([api("GET", "/history"), api("GET", "/topics")]);
  for (const s of /** @type {Sample[] | undefined} */ (hist.data.samples) ?? []) addSample(s);
  drawChart();
  updateTopics(/** @type {TopicInfo[] | undefined} */ (tops.data.items) ?? []);
  await loadClients();
  const live = $("live");
  const es = new EventSource("/api/v1/events");
  es.addEventListener("hello", (e) => {
    /** @type {Hello} */
    const h = eventData(e);
    $("version").textContent = h.version;
    $("event-list").replaceChildren();
    for (const ev of h.events) addEvent(ev);
    showStats(h.stats);
    live.textContent = "live";
    live.className = "live on";
    refreshClients(0);
  });
  es.addEventListener("stats", (e) => showStats(eventData(e)));
  es.addEventListener("topics", (e) => updateTopics(eventData(e)));
  es.addEventListener("event", (e) => {
    addEvent(eventData(e));
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
