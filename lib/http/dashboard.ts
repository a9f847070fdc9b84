/**
 * @module http/dashboard
 * GET / (the dashboard page), /dashboard.js and /dashboard.css. The files
 * are imported as text (`with { type: "text" }`, which Bun and Deno both
 * support), so `bun build --compile` puts them in the executable: nothing
 * is fetched from a CDN or the network. The script is plain JavaScript
 * (lib/dashboard/client.js, types in JSDoc), served as it is: no
 * transpiler on any runtime.
 *
 * A strict Content-Security-Policy allows only this origin's script, style
 * and API; the page is never framed. Opened as `/?token=T` (http.token set),
 * the page stores the token in an HttpOnly, SameSite=Strict cookie and
 * reloads without it in the address bar, so that the API calls and streams
 * the page makes carry it.
 */
import css from "../dashboard/dashboard.css" with { type: "text" };
import htmlText from "../dashboard/index.html" with { type: "text" };
import clientSource from "../dashboard/client.js" with { type: "text" };
import type { HttpContext } from "./app.ts";

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const SECURITY = {
  "Content-Security-Policy": CSP,
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cache-Control": "no-store",
};

/**
 * The browser script, as written: it imports nothing, so there is nothing
 * to bundle. (tsc, with allowJs, types the import as client.js's module;
 * with type "text" it is the file's text.)
 */
const script = clientSource as unknown as string;

export function handleDashboard(ctx: HttpContext, req: Request): Response | null {
  if (req.method !== "GET" && req.method !== "HEAD") return null;
  switch (ctx.url.pathname) {
    case "/":
    case "/index.html": {
      const token = ctx.url.searchParams.get("token");
      if (token !== null) {
        // Authorized already (app.ts checked ?token=): keep it in a cookie, drop it from the URL.
        const secure = ctx.listener.tls ? "; Secure" : "";
        return new Response(null, {
          status: 303,
          headers: { ...SECURITY, Location: "/", "Set-Cookie": `bunmq_token=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict${secure}` },
        });
      }
      return new Response(htmlText as unknown as string, { headers: { ...SECURITY, "Content-Type": "text/html; charset=utf-8" } });
    }
    case "/dashboard.js":
      return new Response(script, { headers: { ...SECURITY, "Content-Type": "text/javascript; charset=utf-8" } });
    case "/dashboard.css":
      return new Response(css, { headers: { ...SECURITY, "Content-Type": "text/css; charset=utf-8" } });
    case "/favicon.ico":
      return new Response(null, { status: 204, headers: SECURITY });
  }
  return null;
}
