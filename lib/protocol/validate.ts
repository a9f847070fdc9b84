/**
 * @module validate
 * Everything the codec does not check: UTF-8 well-formedness and U+0000 in
 * strings, topic-name and topic-filter syntax, `$share/` filters.
 */
import { MqttError, RC } from "./reason-codes.ts";

// ignoreBOM keeps a leading EF BB BF as U+FEFF: [MQTT-1.5.3-3] / [MQTT-1.5.4-3].
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Decode a UTF-8 string field from raw bytes, rejecting ill-formed sequences,
 * surrogates and over-long forms (3.1.1 [MQTT-1.5.3-1], 5 [MQTT-1.5.4-1]) and
 * U+0000 (3.1.1 [MQTT-1.5.3-2], 5 [MQTT-1.5.4-2]) as Malformed.
 */
export function decodeUtf8(buf: Buffer, start: number, end: number): string {
  let ascii = true;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b === 0) throw new MqttError(RC.MALFORMED_PACKET, "string contains U+0000");
    if (b >= 0x80) {
      ascii = false;
      break;
    }
  }
  if (ascii) return buf.latin1Slice(start, end);
  let s: string;
  try {
    s = strictUtf8.decode(buf.subarray(start, end));
  } catch {
    throw new MqttError(RC.MALFORMED_PACKET, "string is not well-formed UTF-8");
  }
  if (s.includes("\u0000")) throw new MqttError(RC.MALFORMED_PACKET, "string contains U+0000");
  return s;
}

/**
 * Check a string that mqtt-packet already decoded. Its decoder turns invalid
 * UTF-8 into U+FFFD, so U+FFFD stands in for "was not well-formed"
 * ([MQTT-1.5.4-1]); a genuine U+FFFD is refused too, which is acceptable.
 */
export function checkDecodedString(s: unknown, what: string): void {
  // mqtt-packet yields null for a string that runs past the packet.
  if (typeof s !== "string") throw new MqttError(RC.MALFORMED_PACKET, `${what} is missing or runs past the packet`);
  if (s.includes("\u0000")) throw new MqttError(RC.MALFORMED_PACKET, `${what} contains U+0000`);
  if (s.includes("\uFFFD")) throw new MqttError(RC.MALFORMED_PACKET, `${what} is not well-formed UTF-8`);
}

/**
 * Validate a topic name (PUBLISH, Will Topic, Response Topic). Returns 0 when
 * valid, else the v5 reason code that describes the problem.
 */
export function topicNameError(topic: string, maxLevels: number): number {
  if (topic.length === 0) return RC.PROTOCOL_ERROR; // [MQTT-4.7.3-1]
  let levels = 1;
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    // Wildcards are for filters only: [MQTT-3.3.2-2], 3.1.1 [MQTT-4.7.1-1], 5 [MQTT-4.7.0-1]
    if (c === 0x2b /* + */ || c === 0x23 /* # */) return RC.PROTOCOL_ERROR;
    if (c === 0x2f /* / */ && ++levels > maxLevels) return RC.TOPIC_NAME_INVALID;
    if (c === 0) return RC.MALFORMED_PACKET; // [MQTT-4.7.3-2]
  }
  return 0;
}

/**
 * True when `filter` is a syntactically valid topic filter: `#` only as the
 * whole last level, `+` only as a whole level (3.1.1 [MQTT-4.7.1-2],
 * [MQTT-4.7.1-3]; 5 [MQTT-4.7.1-1], [MQTT-4.7.1-2]), non-empty ([MQTT-4.7.3-1])
 * and within the configured level count.
 */
export function isValidFilter(filter: string, maxLevels: number): boolean {
  const n = filter.length;
  if (n === 0) return false;
  let levels = 1;
  let levelStart = 0;
  for (let i = 0; i < n; i++) {
    const c = filter.charCodeAt(i);
    if (c === 0x2f) {
      if (++levels > maxLevels) return false;
      levelStart = i + 1;
    } else if (c === 0x2b) {
      if (i !== levelStart) return false;
      if (i + 1 < n && filter.charCodeAt(i + 1) !== 0x2f) return false;
    } else if (c === 0x23) {
      if (i !== levelStart || i !== n - 1) return false;
    } else if (c === 0) {
      return false;
    }
  }
  return true;
}

export interface SharedFilter {
  group: string;
  filter: string;
}

/**
 * Split `$share/{ShareName}/{filter}`. Returns null when `filter` is not a
 * shared subscription, or "invalid" when it starts with `$share/` but breaks
 * [MQTT-4.8.2-1] / [MQTT-4.8.2-2].
 */
export function parseSharedFilter(filter: string, maxLevels: number): SharedFilter | null | "invalid" {
  if (!filter.startsWith("$share/")) return null;
  const slash = filter.indexOf("/", 7);
  if (slash < 0) return "invalid";
  const group = filter.slice(7, slash);
  if (group.length === 0 || /[+#]/.test(group)) return "invalid";
  const rest = filter.slice(slash + 1);
  if (!isValidFilter(rest, maxLevels)) return "invalid";
  return { group, filter: rest };
}
