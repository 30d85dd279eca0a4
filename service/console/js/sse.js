// The revocation feed (GET /v1/events) read with fetch: EventSource cannot send an
// Authorization header, and credentials go nowhere else. Parses Server-Sent Events as the
// HTML standard does, keeps the last event id, and reconnects with Last-Event-ID.

// Yields {event, data, id} for each dispatched message; `id` alone (no data) moves the
// position without dispatching, as in EventSource.
export async function* messages(body, onId) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message = { event: "", data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop(); // an unfinished line waits for the next chunk
    for (const line of lines) {
      if (line === "") {
        if (message.data.length) {
          yield { event: message.event || "message", data: message.data.join("\n") };
        }
        message = { event: "", data: [] };
        continue;
      }
      if (line.startsWith(":")) continue; // a heartbeat comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") message.data.push(value);
      else if (field === "event") message.event = value;
      else if (field === "id") onId(value);
    }
  }
}

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;

// Follows the feed until stop(): onMessage({event, data}) for each message, onState(state,
// detail) with "connecting", "live" (after `ready`), "retrying" or "stopped".
export class FeedFollower {
  #api;
  #abort = null;
  #stopped = false;
  lastEventId = null;

  constructor(api, { onMessage, onState }) {
    this.#api = api;
    this.onMessage = onMessage;
    this.onState = onState;
  }

  async run() {
    let delay = RETRY_FIRST_MS;
    while (!this.#stopped) {
      this.#abort = new AbortController();
      this.onState("connecting");
      try {
        const response = await this.#api.openFeed(this.lastEventId, this.#abort.signal);
        for await (const message of messages(response.body, (id) => (this.lastEventId = id))) {
          if (message.event === "ready") this.onState("live");
          this.onMessage(message);
          delay = RETRY_FIRST_MS;
        }
        if (this.#stopped) break;
        this.onState("retrying", "the stream ended");
      } catch (error) {
        if (this.#stopped) break;
        if (error.status === 401 || error.status === 403) {
          this.onState("stopped", error); // retrying would not help
          return;
        }
        this.onState("retrying", error);
      }
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
    this.onState("stopped");
  }

  stop() {
    this.#stopped = true;
    this.#abort?.abort();
  }
}
