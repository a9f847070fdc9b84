/**
 * Run by `deno run -A tests/deno/http.deno.ts`: lib/runtime/deno-http.ts
 * under Deno, driven directly (no broker): HTTP requests, WebSocket
 * upgrades with the "mqtt" subprotocol echoing binary messages, the
 * emulated backpressure (send -1, drain), maxPayloadLength, pause/resume
 * holding messages, the hold limit, stop / retire, TLS. With
 * --unstable-net it also checks retire() beside a second server on the
 * port (SO_REUSEPORT); without, that reusePort is refused. One `ok - …` /
 * `not ok - …` line per check, then `PASS` or `FAIL`; exits non-zero on a
 * failure.
 *
 * Type-checked with the rest of the project against Bun's types, so the
 * Deno members used here are declared below.
 */
import { Buffer } from "node:buffer";
import { denoServeHttp, HOLD_MIN_BYTES } from "../../lib/runtime/deno-http.ts";
import type { HttpServeOptions, HttpServerHandle, ServerSocket, WsHandlers } from "../../lib/runtime/types.ts";

interface TestConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}
const D = (globalThis as unknown as {
  Deno: {
    exit(code: number): never;
    makeTempDirSync(): string;
    readTextFileSync(path: string): string;
    Command: new (cmd: string, o: { args: string[]; cwd: string; stdout: "null"; stderr: "piped" }) => { outputSync(): { success: boolean; stderr: Uint8Array } };
    connect(o: { hostname: string; port: number }): Promise<TestConn>;
    connectTls(o: { hostname: string; port: number; caCerts: string[] }): Promise<TestConn>;
  };
}).Deno;

// ---------------------------------------------------------------- harness

let failures = 0;
function check(name: string, ok: boolean, detail?: unknown): void {
  if (ok) console.log(`ok - ${name}`);
  else {
    failures++;
    console.log(`not ok - ${name}${detail === undefined ? "" : `: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`}`);
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(5);
  }
  return true;
}
// A hang is a failure, not a stuck run.
const watchdog = setTimeout(() => {
  console.log("not ok - the test run timed out\nFAIL");
  D.exit(1);
}, 60_000);

interface Data {
  id: number;
}
/** What a server's handlers saw. */
interface Seen {
  opened: ServerSocket<Data>[];
  messages: (Buffer | string)[];
  drains: number;
  closed: number;
  errors: Error[];
}

function serve(over: Partial<HttpServeOptions<Data>> & { ws?: Partial<WsHandlers<Data>>; echo?: boolean } = {}): { server: HttpServerHandle; seen: Seen } {
  const seen: Seen = { opened: [], messages: [], drains: 0, closed: 0, errors: [] };
  let next = 1;
  const server = denoServeHttp<Data>({
    host: "127.0.0.1",
    port: 0,
    tls: null,
    maxRequestBodySize: 1024,
    fetch(req, info) {
      const url = new URL(req.url);
      if (url.pathname === "/mqtt") {
        const proto = req.headers.get("sec-websocket-protocol")?.split(",").map((p) => p.trim());
        if (proto?.includes("mqtt") !== true) return new Response("no mqtt\n", { status: 400 });
        return info.upgrade({ id: next++ }, "mqtt") ? undefined : new Response("upgrade failed\n", { status: 400 });
      }
      if (url.pathname === "/upgrade-plain") return new Response(String(info.upgrade({ id: 0 }, "mqtt")));
      if (url.pathname === "/throw") throw new Error("boom");
      if (url.pathname === "/body") return req.text().then((t) => new Response(`got ${t.length}`));
      info.noTimeout();
      return new Response(`hello ${info.remoteAddress} ${info.remotePort > 0}`);
    },
    error: (err) => new Response(`error: ${err.message}`, { status: 500 }),
    ...over,
    websocket: {
      maxPayloadLength: 64 * 1024,
      open: (ws) => void seen.opened.push(ws),
      message(ws, m) {
        seen.messages.push(m);
        if (over.echo !== false && typeof m !== "string") ws.send(m);
      },
      drain: () => void seen.drains++,
      close: () => void seen.closed++,
      error: (_ws, err) => void seen.errors.push(err),
      ...over.ws,
    },
  });
  return { server, seen };
}

/** A browser-style WebSocket client recording what it gets. */
function client(port: number, protocols: string[] = ["mqtt"]) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, protocols);
  ws.binaryType = "arraybuffer";
  const got: Uint8Array[] = [];
  let gotBytes = 0;
  let closeCode = -1;
  const opened = new Promise<boolean>((r) => {
    ws.onopen = () => r(true);
    ws.onerror = () => r(false);
  });
  ws.onmessage = (e) => {
    const b = new Uint8Array(e.data as ArrayBuffer);
    got.push(b);
    gotBytes += b.length;
  };
  ws.onclose = (e) => (closeCode = e.code);
  return {
    ws,
    opened,
    got,
    get gotBytes() {
      return gotBytes;
    },
    get closeCode() {
      return closeCode;
    },
  };
}

async function refused(port: number): Promise<boolean> {
  try {
    const c = await D.connect({ hostname: "127.0.0.1", port });
    c.close();
    return false;
  } catch {
    return true;
  }
}

// An exception anywhere is a failure with its stack, not a crash without the summary line.
globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  check("no unhandled rejection", false, String((e as PromiseRejectionEvent).reason?.stack ?? (e as PromiseRejectionEvent).reason));
});

try {
  // ---------------------------------------------------------------- HTTP

  {
    const { server } = serve();
    check("the bound port is known when serveHttp returns", server.port > 0, server.port);
    const r = await fetch(`http://127.0.0.1:${server.port}/`);
    const text = await r.text();
    check("an HTTP GET is answered, with the peer's address", r.status === 200 && text === "hello 127.0.0.1 true", { status: r.status, text });

    let code: unknown = null;
    try {
      denoServeHttp<Data>({ ...{ host: "127.0.0.1", port: server.port, tls: null, maxRequestBodySize: 1 }, fetch: () => new Response(""), error: () => new Response(""), websocket: {} as WsHandlers<Data> });
    } catch (err) {
      code = (err as { code?: unknown }).code;
    }
    check("binding a port in use throws synchronously, with code EADDRINUSE", code === "EADDRINUSE", code);

    const t = await fetch(`http://127.0.0.1:${server.port}/throw`);
    check("a handler that throws gets the error response", t.status === 500 && (await t.text()) === "error: boom", t.status);

    const u = await fetch(`http://127.0.0.1:${server.port}/upgrade-plain`);
    check("upgrade() on a plain request returns false", (await u.text()) === "false");

    const small = await fetch(`http://127.0.0.1:${server.port}/body`, { method: "POST", body: "x".repeat(100) });
    check("a body under maxRequestBodySize is read", (await small.text()) === "got 100");
    const big = await fetch(`http://127.0.0.1:${server.port}/body`, { method: "POST", body: "x".repeat(5000) });
    check("a Content-Length over maxRequestBodySize gets 413", big.status === 413, big.status);
    await big.body?.cancel();
    const chunks = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 5; i++) c.enqueue(new Uint8Array(500));
        c.close();
      },
    });
    const chunked = await fetch(`http://127.0.0.1:${server.port}/body`, { method: "POST", body: chunks, duplex: "half" } as RequestInit);
    check("a chunked body over maxRequestBodySize fails to read", chunked.status === 500, chunked.status);
    await chunked.body?.cancel();
    server.stop(true);
    check("stop(true) without WebSockets frees the port", await until(() => false, 100).then(() => refused(server.port)));
  }

  // ---------------------------------------------------------------- WebSocket: upgrade, echo, text

  {
    const { server, seen } = serve();
    const c = client(server.port);
    check("a WebSocket upgrade with subprotocol mqtt opens", await c.opened);
    check("the client got subprotocol mqtt", c.ws.protocol === "mqtt", c.ws.protocol);
    check("open was called with the upgrade's data", await until(() => seen.opened.length === 1).then(() => seen.opened[0]!.data.id === 1 && seen.opened[0]!.readyState === 1));
    c.ws.send(new Uint8Array([0x10, 1, 2, 3]));
    c.ws.send(new Uint8Array([0x30, 4, 5]));
    await until(() => c.got.length === 2);
    check(
      "binary messages arrive as Buffers and are echoed",
      Buffer.isBuffer(seen.messages[0]) && c.got.length === 2 && Buffer.from(c.got[0]!).equals(Buffer.from([0x10, 1, 2, 3])) && Buffer.from(c.got[1]!).equals(Buffer.from([0x30, 4, 5])),
      { seen: seen.messages.length, got: c.got.length },
    );
    c.ws.send("text frame");
    await until(() => seen.messages.length === 3);
    check("a text message arrives as a string", seen.messages[2] === "text frame", seen.messages[2]);

    // Backpressure: Deno writes on a later turn, so send reports -1 and drain follows.
    const ws = seen.opened[0]!;
    const drainsBefore = seen.drains;
    const n = 4 * 1024 * 1024;
    const r = ws.send(new Uint8Array(n).fill(7));
    const buffered = ws.getBufferedAmount();
    check("send of a large message returns -1 (buffered), getBufferedAmount > 0", r === -1 && buffered > 0, { r, buffered });
    check("drain is called once it is written", await until(() => seen.drains > drainsBefore), seen.drains);
    check("after drain nothing is buffered", ws.getBufferedAmount() === 0, ws.getBufferedAmount());
    check("the client got the large message whole", await until(() => c.gotBytes === 7 + n), c.gotBytes);
    // A burst, each send after the previous one drained (what WsTransport does): all arrive, in order.
    let sent = 0;
    const burst = 200;
    const before = c.got.length;
    const sendNext = () => {
      while (sent < burst && ws.getBufferedAmount() === 0) ws.send(new Uint8Array([sent++ & 0xff]));
    };
    const t0 = performance.now();
    sendNext();
    while (sent < burst) {
      const d = seen.drains;
      if (!(await until(() => seen.drains > d, 2000))) break;
      sendNext();
    }
    await until(() => c.got.length === before + burst);
    const inOrder = c.got.slice(before).every((b, i) => b[0] === (i & 0xff));
    check(`${burst} sends paced by drain all arrive in order`, c.got.length === before + burst && inOrder, { got: c.got.length - before, ms: Math.round(performance.now() - t0) });

    // maxPayloadLength
    const closedBefore = seen.closed;
    const msgsBefore = seen.messages.length;
    c.ws.send(new Uint8Array(64 * 1024 + 1));
    check("a message over maxPayloadLength closes the socket with 1009", await until(() => c.closeCode !== -1).then(() => c.closeCode === 1009), c.closeCode);
    check("it is not delivered, and close is called", await until(() => seen.closed === closedBefore + 1).then(() => seen.messages.length === msgsBefore));
    check("a closed socket reports readyState 3 and send 0", ws.readyState === 3 && ws.send(new Uint8Array(1)) === 0, ws.readyState);
    check("no error was reported", seen.errors.length === 0, seen.errors.map((e) => e.message));
    server.stop(true);
  }

  {
    const { server } = serve();
    const r = await fetch(`http://127.0.0.1:${server.port}/mqtt`, { headers: { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Protocol": "mqtt" } });
    check("an incomplete upgrade request (no key) gets the fetch's refusal", r.status === 400, r.status);
    await r.body?.cancel();
    server.stop(true);
  }

  // ---------------------------------------------------------------- pause / resume

  {
    const { server, seen } = serve({ echo: false });
    const c = client(server.port);
    await c.opened;
    await until(() => seen.opened.length === 1);
    const ws = seen.opened[0]!;
    ws.pause();
    check("pause() sets isPaused", ws.isPaused);
    for (let i = 0; i < 3; i++) c.ws.send(new Uint8Array([i]));
    await sleep(150);
    check("while paused, messages are held, not delivered", seen.messages.length === 0, seen.messages.length);
    ws.resume();
    const deliveredInResume = seen.messages.length;
    check("resume() delivers after it returns (not from inside it)", deliveredInResume === 0, deliveredInResume);
    await until(() => seen.messages.length === 3);
    check("on resume the held messages are delivered in order", seen.messages.map((m) => (m as Buffer)[0]).join(",") === "0,1,2", seen.messages.length);
    // A handler that pauses again stops the delivery of what is held.
    let delivered = 0;
    const { server: s2, seen: seen2 } = serve({
      echo: false,
      ws: {
        message(w) {
          delivered++;
          if (delivered === 2) w.pause();
        },
      },
    });
    const c2 = client(s2.port);
    await c2.opened;
    await until(() => seen2.opened.length === 1);
    const w2 = seen2.opened[0]!;
    w2.pause();
    for (let i = 0; i < 4; i++) c2.ws.send(new Uint8Array([i]));
    await sleep(150);
    w2.resume();
    await sleep(50);
    check("a message handler that pauses stops the delivery of the held rest", delivered === 2, delivered);
    w2.resume();
    check("the rest comes on the next resume", await until(() => delivered === 4), delivered);
    // Messages that come after resume, while held ones are still due, queue behind them.
    server.stop(true);
    s2.stop(true);
  }

  {
    const big = 2 * 1024 * 1024;
    const { server, seen } = serve({ echo: false, ws: { maxPayloadLength: big } });
    const c = client(server.port);
    await c.opened;
    await until(() => seen.opened.length === 1);
    seen.opened[0]!.pause();
    const count = Math.ceil(HOLD_MIN_BYTES / big) + 1;
    for (let i = 0; i < count; i++) c.ws.send(new Uint8Array(big));
    check(`a peer sending over ${HOLD_MIN_BYTES >> 20} MiB while held back is closed (1008)`, await until(() => c.closeCode !== -1, 5000).then(() => c.closeCode === 1008), c.closeCode);
    check("and nothing was delivered", seen.messages.length === 0, seen.messages.length);
    server.stop(true);
  }

  // ---------------------------------------------------------------- close, terminate, stop, retire

  {
    const { server, seen } = serve();
    const c = client(server.port);
    await c.opened;
    await until(() => seen.opened.length === 1);
    seen.opened[0]!.close(1003);
    check("close(code) sends that code", await until(() => c.closeCode !== -1).then(() => c.closeCode === 1003), c.closeCode);
    check("and close is called", await until(() => seen.closed === 1));

    const c2 = client(server.port);
    await c2.opened;
    await until(() => seen.opened.length === 2);
    const ws = seen.opened[1]!;
    ws.terminate();
    check("terminate() tells close at once, asynchronously", seen.closed === 1 && ws.readyState === 3);
    await sleep(0);
    check("  (by the next microtask)", seen.closed === 2, seen.closed);
    await until(() => c2.closeCode !== -1);
    await sleep(50);
    check("  and only once", seen.closed === 2, seen.closed);
    server.stop(true);
  }

  {
    // stop(false): no new requests, the open WebSockets go on; the port goes with the last of them.
    const { server, seen } = serve();
    const c = client(server.port);
    await c.opened;
    await until(() => seen.opened.length === 1);
    server.stop(false);
    const r = await fetch(`http://127.0.0.1:${server.port}/`).catch((e: Error) => e);
    check("after stop(false) a new request is refused (503)", r instanceof Response && r.status === 503, r instanceof Response ? r.status : String(r));
    if (r instanceof Response) await r.body?.cancel();
    c.ws.send(new Uint8Array([1, 2]));
    check("after stop(false) an open WebSocket still carries messages both ways", await until(() => c.got.length === 1));
    seen.opened[0]!.send(new Uint8Array([9]));
    seen.opened[0]!.close(1000);
    check("a message sent just before close still arrives", await until(() => c.closeCode !== -1).then(() => c.got.length === 2 && c.got[1]![0] === 9), c.got.length);
    check("once the last WebSocket closed, the port is released", await until(() => false, 200).then(() => refused(server.port)));
  }

  {
    const { server, seen } = serve();
    const a = client(server.port);
    const b = client(server.port);
    await Promise.all([a.opened, b.opened]);
    await until(() => seen.opened.length === 2);
    server.stop(true);
    check("stop(true) tells close for every WebSocket", await until(() => seen.closed === 2), seen.closed);
    check("  the clients see them closed", await until(() => a.closeCode !== -1 && b.closeCode !== -1), [a.closeCode, b.closeCode]);
    check("  and the port is released", await until(() => false, 100).then(() => refused(server.port)));
  }

  const unstableNet = typeof (D as unknown as { listenDatagram?: unknown }).listenDatagram === "function";
  if (!unstableNet) {
    let msg = "";
    try {
      serve({ reusePort: true }).server.stop(true);
    } catch (err) {
      msg = (err as Error).message;
    }
    check("without --unstable-net, reusePort throws (instead of Deno ending the process)", msg.includes("--unstable-net"), msg);
    console.log("# skipped: retire() beside a new server on the same port (run with --unstable-net)");
  } else {
    // retire(): a restart bound a new server on the port (SO_REUSEPORT); the old one's WebSockets are closed.
    const { server: old, seen } = serve({ reusePort: true });
    const c = client(old.port);
    await c.opened;
    const { server: fresh } = serve({ reusePort: true, port: old.port });
    check("a second server binds the same port with reusePort", fresh.port === old.port);
    old.retire();
    check("retire() closes the old server's WebSockets with 1001", await until(() => c.closeCode !== -1).then(() => c.closeCode === 1001), c.closeCode);
    check("  close is called", await until(() => seen.closed === 1));
    await sleep(100);
    let ok = 0;
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`http://127.0.0.1:${old.port}/`, { headers: { Connection: "close" } });
      if (r.status === 200) ok++;
      await r.body?.cancel();
    }
    check("  new requests all reach the new server", ok === 10, ok);
    old.stop(true);
    fresh.stop(true);
  }

  // ---------------------------------------------------------------- TLS

  {
    const dir = D.makeTempDirSync();
    const run = (args: string[]) => new D.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" }).outputSync();
    const made = run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"]);
    const enc = run(["pkey", "-in", "key.pem", "-aes256", "-passout", "pass:pw", "-out", "enc.pem"]);
    if (!made.success || !enc.success) {
      check("openssl made a test certificate", false, new TextDecoder().decode(made.stderr) + new TextDecoder().decode(enc.stderr));
    } else {
      const cert = D.readTextFileSync(`${dir}/cert.pem`);
      const key = D.readTextFileSync(`${dir}/enc.pem`);
      const { server } = serve({ tls: { cert, key, passphrase: "pw" } });
      const conn = await D.connectTls({ hostname: "127.0.0.1", port: server.port, caCerts: [cert] });
      await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
      let text = "";
      const buf = new Uint8Array(4096);
      for (;;) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      conn.close();
      check("over TLS (an encrypted key and its passphrase) a GET is answered", text.startsWith("HTTP/1.1 200") && text.includes("hello 127.0.0.1"), text.slice(0, 40));
      server.stop(true);
      for (const [what, tls] of [
        ["client certificates", { cert, key, passphrase: "pw", requestCert: true }],
        ["TLS 1.3 only", { cert, key, passphrase: "pw", secureOptions: 1 }],
      ] as const) {
        let msg = "";
        try {
          serve({ tls }).server.stop(true);
        } catch (err) {
          msg = (err as Error).message;
        }
        check(`a TLS listener asking for ${what} refuses to start`, msg.includes("not supported"), msg);
      }
    }
  }

} catch (err) {
  check("the run ends without an exception", false, String((err as Error)?.stack ?? err));
}

clearTimeout(watchdog);
console.log(failures === 0 ? "PASS" : `FAIL (${failures} failed)`);
D.exit(failures === 0 ? 0 : 1);
