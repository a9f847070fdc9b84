/**
 * The dashboard at GET / in a real headless Chromium (DevTools protocol),
 * against a real broker with real MQTT clients: the page shows a connected
 * client and the topic it published with payload, QoS and the retained
 * flag; kicks a client (a v5 client gets DISCONNECT 0x98); publishes from
 * its form to an MQTT subscriber; watches a filter; lists takeovers and
 * disconnects with their reason codes; draws the rate chart from the
 * history. No script error and no CSP violation on the page. With
 * http.token, /?token= stores it in a cookie and the page works from it.
 * A screenshot goes to tests/artifacts/dashboard.png (not committed).
 *
 * Skipped, with a printed reason, when no Chromium is installed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunningBroker } from "../../lib/server.ts";
import { portOf, startTestBroker } from "../helpers/broker.ts";
import { Browser, findChromium } from "../helpers/browser.ts";
import { connectClient, type TestClient } from "../helpers/clients.ts";
import { RawClient } from "../helpers/raw.ts";

const exe = findChromium();
if (exe === null) console.warn("skipped: tests/dashboard need Chromium (apt-get install -y chromium, or set CHROMIUM=/path)");
const run = exe === null ? describe.skip : describe;

const ARTIFACTS = join(import.meta.dir, "..", "artifacts");

run("dashboard in headless Chromium", () => {
  let rb: RunningBroker;
  let browser: Browser;
  let base: string;
  let mqttPort: number;
  const clients: (TestClient | RawClient)[] = [];

  beforeAll(async () => {
    rb = await startTestBroker({ listeners: [{ host: "127.0.0.1", port: 0 }, { protocol: "http", host: "127.0.0.1", port: 0 }], sys: { interval: 1 } });
    mqttPort = portOf(rb, "mqtt");
    base = `http://127.0.0.1:${portOf(rb, "http")}`;
    browser = await Browser.launch(exe!);
    await browser.goto(`${base}/`);
    await browser.waitFor("document.getElementById('live').textContent === 'live'", "the event stream to open");
  }, 60_000);

  afterAll(async () => {
    for (const c of clients) "end" in c ? await c.end() : c.destroy();
    await browser?.close();
    await rb?.stop();
  });

  test("a connected MQTT client appears in the client list with its address and version", async () => {
    const c = await connectClient(mqttPort, { clientId: "dash-sensor", protocolVersion: 5, username: "bob", keepalive: 30 });
    clients.push(c);
    const row = await browser.waitFor<string>("document.querySelector('tr[data-client=\"dash-sensor\"]')?.textContent", "the client's row");
    expect(row).toContain("bob");
    expect(row).toContain("127.0.0.1:");
    expect(row).toContain("30s");
    // The header counters follow with the next stats event (one a second).
    await browser.waitFor("document.getElementById('c-clients').textContent === '1'", "the client count", 5000);
  });

  test("a published message shows in the topic tree: payload, QoS, retained flag", async () => {
    const c = clients[0] as TestClient;
    await c.client.publishAsync("sensors/room1/temp", "21.5", { qos: 1, retain: true });
    await c.client.publishAsync("sensors/room2/temp", "19.0", { qos: 0 });
    const leaf = await browser.waitFor<string>("document.querySelector('li[data-topic=\"sensors/room1/temp\"]')?.textContent", "the topic in the tree");
    expect(leaf).toContain("temp");
    expect(leaf).toContain("21.5");
    expect(leaf).toContain("QoS 1");
    expect(leaf).toContain("retained");
    const other = await browser.waitFor<string>("document.querySelector('li[data-topic=\"sensors/room2/temp\"]')?.textContent", "the second topic");
    expect(other).toContain("19.0");
    expect(other).toContain("QoS 0");
    expect(other).not.toContain("retained");
    // A later message on the same topic replaces the shown one.
    await c.client.publishAsync("sensors/room1/temp", "22.0", { qos: 1, retain: true });
    await browser.waitFor("document.querySelector('li[data-topic=\"sensors/room1/temp\"]')?.textContent.includes('22.0')", "the newer payload");
  });

  test("retained messages from before the page opened are in the tree after a reload ($SYS too)", async () => {
    await browser.goto(`${base}/`);
    await browser.waitFor("document.getElementById('live').textContent === 'live'", "stream after reload");
    const leaf = await browser.waitFor<string>("document.querySelector('li[data-topic=\"sensors/room1/temp\"]')?.textContent", "retained topic after reload");
    expect(leaf).toContain("22.0");
    await browser.waitFor("document.querySelector('li[data-topic=\"$SYS/broker/version\"]')", "$SYS in the tree");
  });

  test("Kick closes the client: a v5 client gets DISCONNECT 0x98 (administrative action); the row goes, the event shows the code", async () => {
    const raw = await RawClient.connected(mqttPort, 5, { clientId: "dash-kick-me" });
    clients.push(raw);
    await browser.waitFor("document.querySelector('button[data-kick=\"dash-kick-me\"]')", "the kick button");
    await browser.eval("document.querySelector('button[data-kick=\"dash-kick-me\"]').click()");
    const d = await raw.nextOf("disconnect", 5000);
    expect(d.reasonCode).toBe(0x98);
    expect(await raw.waitClose(3000)).toBe(true);
    await browser.waitFor("!document.querySelector('tr[data-client=\"dash-kick-me\"]')", "the row to go");
    const ev = await browser.waitFor<string>("[...document.querySelectorAll('#event-list li[data-type=disconnected]')].map(l => l.textContent).find(t => t.includes('dash-kick-me'))", "the disconnect event");
    expect(ev).toContain("0x98");
    expect(ev).toContain("administrative action");
    expect(rb.broker.sessions.has("dash-kick-me")).toBe(false);
  });

  test("a takeover is listed with 0x8e and both addresses", async () => {
    const first = await RawClient.connected(mqttPort, 5, { clientId: "dash-twice" });
    const second = await RawClient.connected(mqttPort, 5, { clientId: "dash-twice" });
    clients.push(first, second);
    expect((await first.nextOf("disconnect", 5000)).reasonCode).toBe(0x8e);
    const ev = await browser.waitFor<string>("[...document.querySelectorAll('#event-list li[data-type=takeover]')].map(l => l.textContent).find(t => t.includes('dash-twice'))", "the takeover event");
    expect(ev).toContain("0x8e");
    expect(ev).toMatch(/127\.0\.0\.1:\d+ → 127\.0\.0\.1:\d+/);
  });

  test("the publish box publishes to MQTT subscribers", async () => {
    const sub = await connectClient(mqttPort, { clientId: "dash-listener" });
    clients.push(sub);
    await sub.client.subscribeAsync("from/page", { qos: 1 });
    await browser.eval(`(() => {
      document.getElementById('pub-topic').value = 'from/page';
      document.getElementById('pub-payload').value = 'hello from the dashboard';
      document.getElementById('pub-qos').value = '1';
      document.getElementById('pub-form').requestSubmit();
    })()`);
    await sub.waitMessages(1, 5000);
    expect(sub.messages.map((m) => [m.topic, m.payload.toString(), m.qos])).toEqual([["from/page", "hello from the dashboard", 1]]);
    expect(await browser.waitFor<string>("document.getElementById('pub-result').textContent", "the publish result")).toContain("published (delivered)");
    // An invalid topic is refused with the API's reason, shown on the page.
    await browser.eval(`(() => { document.getElementById('pub-topic').value = 'a/+/b'; document.getElementById('pub-form').requestSubmit(); })()`);
    await browser.waitFor("document.getElementById('pub-result').textContent.startsWith('refused')", "the refusal");
  });

  test("the subscribe box watches a filter: matching messages appear, others do not", async () => {
    await browser.eval(`(() => { document.getElementById('sub-filter').value = 'watch/+/x'; document.getElementById('sub-form').requestSubmit(); })()`);
    await browser.waitFor("document.getElementById('sub-state').textContent === 'watching watch/+/x'", "the watch stream");
    const c = clients[0] as TestClient;
    await c.client.publishAsync("watch/other", "not this", { qos: 0 });
    await c.client.publishAsync("watch/a/x", "this one", { qos: 1 });
    const item = await browser.waitFor<string>("document.querySelector('#watch-list li[data-topic=\"watch/a/x\"]')?.textContent", "the watched message");
    expect(item).toContain("this one");
    expect(await browser.eval("document.querySelectorAll('#watch-list li').length")).toBe(1);
  });

  test("the rate chart draws the last seconds' messages from the history", async () => {
    const c = clients[0] as TestClient;
    for (let i = 0; i < 50; i++) c.client.publish("rates/x", String(i));
    await browser.waitFor("/peak [1-9]/.test(document.getElementById('chart-max').textContent)", "a non-zero peak", 8000);
    // Some pixel of the canvas is painted in the "in" colour.
    const painted = await browser.eval<boolean>(`(() => {
      const c = document.getElementById('chart'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) if (d[i] === 0x4f && d[i + 1] === 0xb3 && d[i + 2] === 0xff) return true;
      return false;
    })()`);
    expect(painted).toBe(true);
  });

  test("no script error and no Content-Security-Policy violation on the page; a screenshot is saved", async () => {
    // The one expected error: the 400 of the invalid topic published above.
    expect(browser.errors.filter((e) => !/status of 400 .*\/api\/v1\/publish$/.test(e))).toEqual([]);
    mkdirSync(ARTIFACTS, { recursive: true });
    const png = await browser.screenshot();
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    writeFileSync(join(ARTIFACTS, "dashboard.png"), png);
  });
});

run("dashboard with http.token", () => {
  const TOKEN = "dashboard-token-0123456789";
  let rb: RunningBroker;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    rb = await startTestBroker({ listeners: [{ host: "127.0.0.1", port: 0 }, { protocol: "http", host: "127.0.0.1", port: 0 }], http: { token: TOKEN }, sys: { interval: 0 } });
    base = `http://127.0.0.1:${portOf(rb, "http")}`;
    browser = await Browser.launch(exe!);
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await rb?.stop();
  });

  test("without the token the page is refused (401)", async () => {
    expect((await fetch(`${base}/`)).status).toBe(401);
    expect((await fetch(`${base}/api/v1/clients`)).status).toBe(401);
  });

  test("/?token= sets an HttpOnly SameSite=Strict cookie and redirects to /, where the page and its stream work", async () => {
    const r = await fetch(`${base}/?token=${TOKEN}`, { redirect: "manual" });
    expect(r.status).toBe(303);
    expect(r.headers.get("location")).toBe("/");
    expect(r.headers.get("set-cookie")).toMatch(/^bunmq_token=.+; Path=\/; HttpOnly; SameSite=Strict$/);
    await browser.goto(`${base}/?token=${TOKEN}`);
    expect(await browser.eval("location.pathname + location.search")).toBe("/");
    await browser.waitFor("document.getElementById('live').textContent === 'live'", "the stream with the cookie");
    const c = await RawClient.connected(portOf(rb, "mqtt"), 4, { clientId: "dash-token-client" });
    await browser.waitFor("document.querySelector('tr[data-client=\"dash-token-client\"]')", "the client row");
    c.destroy();
    expect(browser.errors).toEqual([]);
  });
});
