import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api/client";
import { ProductCards } from "../components/product-card";
import { subscribe } from "../live";
import { navigate } from "../router";
import { session } from "../session";
import { isBlank, postLength } from "../text";
import {
  displayName,
  failure,
  getConversation,
  leaveConversation,
  listMessages,
  markRead,
  newClientMessageId,
  olderFirst,
  sendMessage,
  type Conversation,
  type Message,
  type Product,
} from "./api";
import { useNames } from "./names";
import { ProductPicker } from "./picker";
import { When } from "./when";

const MAX_MESSAGE_CHARS = 2000;

/** Whether the reader is looking at the newest messages (so a new one should stay in view). */
function nearTheEnd(): boolean {
  const last = document.querySelector(".messages > li:last-child");
  return !last || last.getBoundingClientRect().top < window.innerHeight + 200;
}

/** Known messages plus new ones, each once (live delivery is at least once), oldest first. */
function merge(known: Message[], incoming: Message[]): Message[] {
  const byId = new Map(known.map((message) => [message.id, message]));
  for (const message of incoming) byId.set(message.id, message);
  return [...byId.values()].sort(olderFirst);
}

/** One conversation: its history (older on request), new messages live, the send form, read marks, leaving. */
export function ConversationPage({ conversationId }: { conversationId: string }) {
  const me = session()?.user.id ?? "";
  const [messages, setMessages] = useState<Message[] | null>(null);
  const [olderToken, setOlderToken] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const [conversation, setConversation] = useState<Conversation | null>(null);
  const [arrived, setArrived] = useState("");
  // A message from someone else that came while the tab was hidden: marked read once it is seen.
  const unseen = useRef(false);
  const shown = useRef<Message[] | null>(null);
  shown.current = messages;
  // Set when the newest message should be scrolled into view once rendered.
  const toEnd = useRef(false);
  const others = (conversation?.participantIds ?? []).filter((id) => id !== me);
  const names = useNames(others);

  function markSeen(newest: Message | undefined) {
    if (!newest?.id) return;
    if (document.visibilityState !== "visible") {
      unseen.current = true;
      return;
    }
    unseen.current = false;
    markRead(conversationId, newest.id).catch((cause) => setError(failure(cause)));
  }

  async function loadNewest() {
    const page = await listMessages(conversationId);
    setMessages((known) => merge(known ?? [], page.messages));
    return page;
  }

  async function load(pageToken?: string) {
    setLoading(true);
    setError(null);
    try {
      if (pageToken) {
        const page = await listMessages(conversationId, pageToken);
        setMessages((known) => merge(known ?? [], page.messages));
        setOlderToken(page.nextPageToken);
      } else {
        const page = await loadNewest();
        setOlderToken(page.nextPageToken);
        markSeen(page.messages[0]);
        toEnd.current = true;
      }
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => {
    void load();
    getConversation(conversationId).then(setConversation, () => undefined);
  }, [conversationId]);

  useEffect(() => {
    const onVisible = () => {
      if (document.visibilityState === "visible" && unseen.current) {
        markSeen(shown.current?.[shown.current.length - 1]);
      }
    };
    document.addEventListener("visibilitychange", onVisible);
    const unsubscribe = subscribe("conversations", {
      onEvent: (event) => {
        const message = event.message;
        if (!message || message.conversationId !== conversationId) return;
        toEnd.current = nearTheEnd();
        setMessages((known) => merge(known ?? [], [message]));
        if (message.senderId !== me) {
          setArrived(`New message from ${displayName(message.sender)}`);
          markSeen(message);
        }
      },
      // After a reconnect, whatever was sent in between.
      onOpen: () => void loadNewest().catch(() => undefined),
    });
    return () => {
      document.removeEventListener("visibilitychange", onVisible);
      unsubscribe();
    };
  }, [conversationId]);

  useEffect(() => {
    if (!toEnd.current) return;
    toEnd.current = false;
    document.querySelector(".send-form")?.scrollIntoView({ block: "end" });
  }, [messages]);

  const alone = conversation !== null && others.length === 0;
  const title = alone ? "Conversation (no one else is in it)" : names ? `Conversation with ${names}` : "Conversation";
  const gone = error?.status === 404;
  return (
    <section aria-labelledby="page-title" class="conversation">
      <h1 id="page-title" tabIndex={-1}>
        {title}
      </h1>
      <p>
        <a href="/messages">All conversations</a>
      </p>
      {error && (
        <div class="error" role="alert">
          <p>{gone ? "This conversation does not exist, or you are no longer in it." : error.message}</p>
          {!gone && (
            <button type="button" onClick={() => load(messages ? olderToken || undefined : undefined)}>
              Try again
            </button>
          )}
        </div>
      )}
      {!loading && olderToken && (
        <button type="button" class="more" onClick={() => load(olderToken)}>
          Load older messages
        </button>
      )}
      {loading && (
        <p class="loading" role="status">
          Loading messages…
        </p>
      )}
      {messages && messages.length === 0 && !loading && <p class="empty">No messages yet. Say hello.</p>}
      {messages && messages.length > 0 && (
        <ol class="messages" aria-label="Messages" aria-busy={loading}>
          {messages.map((message) => (
            <MessageItem key={message.id} message={message} mine={message.senderId === me} />
          ))}
        </ol>
      )}
      <p class="sr-only" role="status">
        {arrived}
      </p>
      {!gone && messages && (
        <SendForm conversationId={conversationId} onSent={(message) => setMessages((known) => merge(known ?? [], [message]))} />
      )}
      {!gone && messages && <LeaveButton conversationId={conversationId} />}
    </section>
  );
}

function MessageItem({ message, mine }: { message: Message; mine: boolean }) {
  const sender = message.sender;
  const name = mine ? "You" : displayName(sender ?? { id: message.senderId, username: "", displayName: "Someone" });
  return (
    <li class={mine ? "message mine" : "message"}>
      <p class="message-head">
        {!mine && sender?.username ? (
          <a class="name" href={`/users/${sender.username}`}>
            {name}
          </a>
        ) : (
          <span class="name">{name}</span>
        )}
        {message.createdAt && (
          <>
            {" · "}
            <When at={message.createdAt} />
          </>
        )}
      </p>
      {message.text && <p class="text">{message.text}</p>}
      {message.products && message.products.length > 0 && <ProductCards products={message.products} />}
    </li>
  );
}

/** A refusal (the request itself was wrong) ends the attempt; a lost answer or an outage keeps its key for the retry. */
function endsAttempt(cause: unknown): boolean {
  return cause instanceof ApiError && cause.status >= 400 && cause.status < 500 && cause.status !== 429;
}

function SendForm({ conversationId, onSent }: { conversationId: string; onSent: (message: Message) => void }) {
  const [text, setText] = useState("");
  const [products, setProducts] = useState<Product[]>([]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  // One key per message being written, kept across retries until the server has answered it.
  const clientMessageId = useRef(newClientMessageId());
  const inFlight = useRef(false);
  const length = postLength(text);
  const over = length > MAX_MESSAGE_CHARS;
  const empty = isBlank(text) && products.length === 0;

  async function send(event: Event) {
    event.preventDefault();
    if (inFlight.current || empty || over) return;
    inFlight.current = true;
    setBusy(true);
    setError(null);
    try {
      const draft = { text: text.trim(), productIds: products.map((p) => p.id ?? ""), clientMessageId: clientMessageId.current };
      const message = await sendMessage(conversationId, draft);
      clientMessageId.current = newClientMessageId();
      setText("");
      setProducts([]);
      onSent(message);
    } catch (cause) {
      if (endsAttempt(cause)) clientMessageId.current = newClientMessageId();
      setError(failure(cause));
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  }

  return (
    <form class="send-form" onSubmit={send} aria-label="Send a message">
      <label for="message-text">Message</label>
      <textarea
        id="message-text"
        rows={3}
        value={text}
        aria-invalid={over}
        aria-describedby="message-count"
        onInput={(e) => setText(e.currentTarget.value)}
        onKeyDown={(e) => e.key === "Enter" && (e.ctrlKey || e.metaKey) && void send(e)}
      />
      <ProductPicker chosen={products} onChange={setProducts} disabled={busy} />
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
      <div class="compose-bar">
        <span id="message-count" class={over ? "count over" : "count"}>
          {length} / {MAX_MESSAGE_CHARS}
        </span>
        <button type="submit" disabled={busy || empty || over}>
          {busy ? "Sending…" : "Send"}
        </button>
      </div>
    </form>
  );
}

function LeaveButton({ conversationId }: { conversationId: string }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function leave() {
    setBusy(true);
    setError(null);
    try {
      await leaveConversation(conversationId);
      navigate("/messages");
    } catch (cause) {
      setError(failure(cause));
      setBusy(false);
    }
  }

  return (
    <div class="leave">
      {!confirming ? (
        <button type="button" class="secondary danger" onClick={() => setConfirming(true)}>
          Leave conversation
        </button>
      ) : (
        <div class="confirm" role="group" aria-label="Confirm leaving">
          <span>Leave this conversation? It disappears from your messages and you cannot read it again.</span>
          <button type="button" class="danger" disabled={busy} onClick={leave}>
            Leave
          </button>
          <button type="button" onClick={() => setConfirming(false)}>
            Stay
          </button>
        </div>
      )}
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
    </div>
  );
}
