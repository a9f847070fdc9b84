/**
 * @module handlers/ping
 * PINGREQ is answered with PINGRESP ([MQTT-3.12.4-1]); receiving it already
 * refreshed the keep-alive clock.
 */
import type { Connection } from "../connection.ts";
import { writePingResp } from "../protocol/fast-codec.ts";

export function handlePingReq(conn: Connection): void {
  writePingResp(conn.out);
  conn.markDirty();
}
