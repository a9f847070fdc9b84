/**
 * @module http/sse
 * One Server-Sent Events stream to a browser (or curl): named events with
 * JSON data. A reader that falls behind is cut off once its unread backlog
 * passes a bound, so a dashboard tab left in the background cannot pin the
 * broker's memory; it reconnects on its own (EventSource) when it wakes.
 */

/** Events queued and not yet taken by the HTTP response before the stream is closed. */
const MAX_BACKLOG = 2000;

export class SseStream {
  readonly response: Response;
  private controller: ReadableStreamDefaultController<string> | null = null;
  closed = false;
  /** Called once when the stream ends (the client left, or it was cut off). */
  onClose: (() => void) | null = null;

  constructor(extraHeaders: Record<string, string> = {}) {
    const self = this;
    const body = new ReadableStream<string>(
      {
        start(c) {
          self.controller = c;
        },
        cancel() {
          self.finish();
        },
      },
      { highWaterMark: MAX_BACKLOG },
    );
    this.response = new Response(body, {
      headers: {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
        ...extraHeaders,
      },
    });
  }

  /** Send one event; false when the stream is closed (or was just closed for a full backlog). */
  send(event: string, data: unknown): boolean {
    const c = this.controller;
    if (this.closed || c === null) return false;
    if ((c.desiredSize ?? 0) <= 0) {
      this.close();
      return false;
    }
    try {
      c.enqueue(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      return true;
    } catch {
      this.finish();
      return false;
    }
  }

  /** A comment line: keeps proxies from timing the stream out. */
  ping(): void {
    if (this.closed || this.controller === null) return;
    try {
      this.controller.enqueue(": ping\n\n");
    } catch {
      this.finish();
    }
  }

  close(): void {
    if (this.closed) return;
    try {
      this.controller?.close();
    } catch {
      // already errored or closed by the reader
    }
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    const f = this.onClose;
    this.onClose = null;
    f?.();
  }
}
