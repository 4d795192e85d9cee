/** One dispatched Server-Sent Events message. */
export interface SseMessage {
  /** The `event:` field; `message` when the server sent none. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** The `id:` field of this message, if it had one. */
  id?: string;
  /** The `retry:` field (reconnection delay in ms), if this message had one. */
  retry?: number;
  /**
   * A block with an `id:` and no `data:` (only with `idOnly`): not an event, but it sets
   * the last event ID all the same (the spec's "dispatch the event", step 1). `data` is ''.
   */
  idOnly?: true;
}

/**
 * An incremental parser for `text/event-stream` (WHATWG HTML, "Server-sent events"):
 * feed it decoded text in chunks of any size; it returns the messages each chunk completes.
 *
 * Lines end in `\n`, `\r\n` or `\r` (a `\r` at the end of a chunk is resolved by the next
 * chunk). Comment lines (`:` first, the server's heartbeats) are ignored. A message with no
 * `data:` line is not dispatched, nor is one the stream ends before its blank line; its
 * `id:` still sets the last event ID (the spec's "dispatch the event", step 1): with
 * `idOnly`, such a block is returned in its place among the messages, marked `idOnly`.
 * Unknown fields are ignored.
 */
export function createSseParser(options: { idOnly?: boolean } = {}): { push(chunk: string): SseMessage[] } {
  let buffer = '';
  // A '\r' ended the previous chunk: a '\n' opening the next one belongs to it.
  let skipLf = false;
  let data: string[] = [];
  let event = '';
  let id: string | undefined;
  let retry: number | undefined;

  const line = (text: string, out: SseMessage[]) => {
    if (text === '') {
      if (data.length > 0) {
        const msg: SseMessage = { event: event || 'message', data: data.join('\n') };
        if (id !== undefined) msg.id = id;
        if (retry !== undefined) msg.retry = retry;
        out.push(msg);
      } else if (id !== undefined && options.idOnly) out.push({ event: '', data: '', id, idOnly: true });
      data = [];
      event = '';
      id = undefined;
      retry = undefined;
      return;
    }
    if (text.charCodeAt(0) === 0x3a /* ':' */) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    switch (field) {
      case 'data':
        data.push(value);
        break;
      case 'event':
        event = value;
        break;
      case 'id':
        if (!value.includes('\u0000')) id = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) retry = Number(value);
        break;
    }
  };

  return {
    push(chunk) {
      const out: SseMessage[] = [];
      if (chunk === '') return out;
      let text = chunk;
      if (skipLf && text.startsWith('\n')) text = text.slice(1);
      skipLf = false;
      buffer += text;
      let start = 0;
      for (let i = 0; i < buffer.length; i++) {
        const c = buffer.charCodeAt(i);
        if (c !== 0x0a && c !== 0x0d) continue;
        line(buffer.slice(start, i), out);
        if (c === 0x0d) {
          if (i + 1 === buffer.length) skipLf = true;
          else if (buffer.charCodeAt(i + 1) === 0x0a) i++;
        }
        start = i + 1;
      }
      buffer = buffer.slice(start);
      return out;
    },
  };
}
