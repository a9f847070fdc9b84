/**
 * @module disconnect-encoder
 * The server's v5 DISCONNECT, sized for the client: the Reason String goes
 * along only when the whole packet stays within the client's Maximum Packet
 * Size ([MQTT-3.14.2-3], [MQTT-3.1.2-24]); otherwise it is dropped whole.
 */
import { packetSize, prop, writePacket } from "./prop-writer.ts";
import { REASON_STRING } from "./property-table.ts";

/**
 * A v5 DISCONNECT with reason `code` for a client that accepts packets of at
 * most `maxSize` bytes, or null when not even the bare packet fits.
 *
 * Without a Reason String (none given, or it does not fit, or it is longer
 * than 65,535 UTF-8 bytes): `e0 00` for code 0x00, else `e0 01 code`
 * (Reason Code and Property Length may be left out, v5 §3.14.2.1,
 * §3.14.2.2.1). With it: `e0 RL code PL 1f len string`.
 */
export function encodeDisconnect(code: number, maxSize: number, reasonString?: string): Buffer | null {
  const part = reasonString !== undefined ? prop.str(REASON_STRING, reasonString) : null;
  if (part !== null && packetSize(1, part.length) <= maxSize) {
    const b = Buffer.allocUnsafe(packetSize(1, part.length));
    writePacket(b, 0, 0xe0, [code], [part], part.length);
    return b;
  }
  if (code === 0) return maxSize >= 2 ? Buffer.from([0xe0, 0x00]) : null;
  return maxSize >= 3 ? Buffer.from([0xe0, 0x01, code]) : null;
}
