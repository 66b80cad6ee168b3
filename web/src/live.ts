// The tab's one live connection: GET /v1/events:watch carries the caller's
// new home posts, notifications and messages on a single stream, so several
// open pages (and the header's badge) never hold more than one connection
// each tab. Pages subscribe by kind here; the stream is open while anyone
// listens. It is newline-delimited JSON read with fetch (the bearer token goes
// in a header); when it ends (the token it opened with expires, a deploy) it
// is reopened with a fresh token.
import { useEffect, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Schemas } from "./api/client";
import { accessToken, endIfUnauthenticated, onSessionChange, session } from "./session";

type LiveEvent = Schemas["aviary.notifications.v1.WatchEventsResponse"];
type Events = { [K in keyof LiveEvent]-?: NonNullable<LiveEvent[K]> };
type Kind = keyof Events;

const EVENTS_PATH = "/v1/events:watch";
const FIRST_RETRY_MS = 1_000;
const LAST_RETRY_MS = 30_000;
// A stream that stayed open this long ended normally: reopen at once.
const HEALTHY_MS = 10_000;

type Subscriber<T> = { onEvent: (event: T) => void; onOpen?: () => void };
const subscribers: { [K in Kind]: Set<Subscriber<Events[K]>> } = {
  home: new Set(),
  notifications: new Set(),
  conversations: new Set(),
};

function allSubscribers(): Subscriber<never>[] {
  return Object.values(subscribers).flatMap((set) => [...set] as Subscriber<never>[]);
}

function dispatch(event: LiveEvent): void {
  for (const kind of Object.keys(subscribers) as Kind[]) {
    const payload = event[kind];
    if (payload === undefined) continue;
    for (const subscriber of subscribers[kind]) (subscriber as Subscriber<typeof payload>).onEvent(payload);
  }
}

let controller: AbortController | null = null;

function open(): void {
  const next = new AbortController();
  controller = next;
  void run(next.signal);
}

function close(): void {
  controller?.abort();
  controller = null;
}

async function run(signal: AbortSignal): Promise<void> {
  let retryMs = FIRST_RETRY_MS;
  while (!signal.aborted && session()) {
    const openedAt = Date.now();
    try {
      await readOnce(signal);
    } catch (cause) {
      if (signal.aborted) return;
      if (cause instanceof ApiError && cause.status === 401) {
        endIfUnauthenticated(cause);
        return;
      }
    }
    const healthy = Date.now() - openedAt > HEALTHY_MS;
    retryMs = healthy ? FIRST_RETRY_MS : Math.min(retryMs * 2, LAST_RETRY_MS);
    await sleep(healthy ? 0 : retryMs, signal);
  }
}

async function readOnce(signal: AbortSignal): Promise<void> {
  const token = await accessToken();
  const response = await fetch(EVENTS_PATH, {
    headers: { Authorization: `Bearer ${token}`, Accept: "application/x-ndjson" },
    cache: "no-store",
    signal,
  });
  if (!response.ok || !response.body) throw new ApiError(`live stream refused: ${response.status}`, response.status);
  for (const subscriber of allSubscribers()) subscriber.onOpen?.();
  await readLines(response.body, signal, (line) => dispatch(JSON.parse(line) as LiveEvent));
}

async function readLines(body: ReadableStream<Uint8Array>, signal: AbortSignal, onLine: (line: string) => void) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const cancel = () => void reader.cancel().catch(() => undefined);
  signal.addEventListener("abort", cancel, { once: true });
  let buffered = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, end).trim();
        buffered = buffered.slice(end + 1);
        if (line) onLine(line);
      }
    }
  } finally {
    signal.removeEventListener("abort", cancel);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

let signedInAs = session()?.user.id ?? null;
onSessionChange((next) => {
  const who = next?.user.id ?? null;
  if (who === signedInAs) return; // a token rotation: the open stream stays
  signedInAs = who;
  close();
  if (who && allSubscribers().length > 0) open();
});

/** Live events of one kind until the returned function is called. */
export function subscribe<K extends Kind>(kind: K, subscriber: Subscriber<Events[K]>): () => void {
  subscribers[kind].add(subscriber);
  if (!controller && session()) open();
  return () => {
    subscribers[kind].delete(subscriber);
    if (allSubscribers().length === 0) close();
  };
}

// The unread count behind the header's badge, kept current from the
// notifications stream: any event (new, grown, withdrawn) re-reads the count,
// which stays right however notices are grouped.
type CountListener = (count: number) => void;
const countListeners = new Set<CountListener>();
let unreadCount = 0;
let recount: ReturnType<typeof setTimeout> | undefined;

export function setUnreadCount(count: number): void {
  unreadCount = count;
  for (const listener of countListeners) listener(count);
}

async function refreshUnreadCount(): Promise<void> {
  try {
    const result = await api
      .GET("/v1/notifications", { params: { query: { pageSize: 1 } }, headers: { Authorization: `Bearer ${await accessToken()}` } })
      .catch((cause) => Promise.reject(networkError(cause)));
    setUnreadCount(unwrap(result).unreadCount ?? 0);
  } catch (cause) {
    endIfUnauthenticated(cause);
  }
}

function scheduleRecount(): void {
  clearTimeout(recount);
  recount = setTimeout(() => void refreshUnreadCount(), 150);
}

/** The caller's unread notification count, live. */
export function useUnreadCount(): number {
  const [count, setCount] = useState(unreadCount);
  useEffect(() => {
    countListeners.add(setCount);
    const unsubscribe = subscribe("notifications", { onEvent: scheduleRecount, onOpen: scheduleRecount });
    return () => {
      countListeners.delete(setCount);
      unsubscribe();
    };
  }, []);
  return count;
}
