/**
 * @module http/api
 * The JSON API under /api/v1 (placeholder until the API lands).
 */
import { type HttpContext, jsonError } from "./app.ts";

export function handleApi(_ctx: HttpContext, _req: Request): Response | Promise<Response> {
  return jsonError(404, "not found");
}
