/**
 * @module http/dashboard
 * The dashboard at / (placeholder until the dashboard lands).
 */
import type { HttpContext } from "./app.ts";

export function handleDashboard(_ctx: HttpContext, _req: Request): Response | null {
  return null;
}
