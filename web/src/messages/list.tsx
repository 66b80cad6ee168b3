import { useEffect, useRef, useState } from "preact/hooks";
import type { ApiError } from "../api/client";
import { subscribe } from "../live";
import { session } from "../session";
import { failure, listConversations, type Conversation, type Message } from "./api";
import { useNames } from "./names";
import { When } from "./when";

// Live messages arrive in bursts (a group, a reconnect): re-read the first page once per burst.
const RELOAD_DELAY_MS = 150;

/** New first page on top, then the older pages already shown (without the ones that moved up). */
function mergeFirstPage(first: Conversation[], known: Conversation[]): Conversation[] {
  const fresh = new Set(first.map((conversation) => conversation.id));
  return [...first, ...known.filter((conversation) => !fresh.has(conversation.id))];
}

/** The caller's conversations, newest activity first, kept current by the tab's live stream. */
export function ConversationsPage() {
  const [conversations, setConversations] = useState<Conversation[] | null>(null);
  const [nextPageToken, setNextPageToken] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);
  const reload = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);

  async function load(pageToken?: string) {
    setLoading(true);
    setError(null);
    try {
      const page = await listConversations(pageToken);
      setConversations((known) => (pageToken && known ? [...known, ...page.conversations] : page.conversations));
      setNextPageToken(page.nextPageToken);
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setLoading(false);
    }
  }

  async function refreshFirstPage() {
    try {
      const page = await listConversations();
      setConversations((known) => (known ? mergeFirstPage(page.conversations, known) : page.conversations));
    } catch (cause) {
      setError(failure(cause));
    }
  }

  useEffect(() => void load(), []);

  useEffect(() => {
    const later = () => {
      clearTimeout(reload.current);
      reload.current = setTimeout(() => void refreshFirstPage(), RELOAD_DELAY_MS);
    };
    const unsubscribe = subscribe("conversations", { onEvent: later, onOpen: later });
    return () => {
      clearTimeout(reload.current);
      unsubscribe();
    };
  }, []);

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Messages
      </h1>
      {error && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <button type="button" onClick={() => load(conversations ? nextPageToken || undefined : undefined)}>
            Try again
          </button>
        </div>
      )}
      {conversations && conversations.length === 0 && !loading && (
        <p class="empty">No conversations yet. Open someone's profile and choose “Message” to start one.</p>
      )}
      {conversations && conversations.length > 0 && (
        <ol class="conversations" aria-label="Conversations" aria-busy={loading}>
          {conversations.map((conversation) => (
            <ConversationRow key={conversation.id} conversation={conversation} />
          ))}
        </ol>
      )}
      {loading && (
        <p class="loading" role="status">
          Loading conversations…
        </p>
      )}
      {!loading && nextPageToken && (
        <button type="button" class="more" onClick={() => load(nextPageToken)}>
          Show older conversations
        </button>
      )}
    </section>
  );
}

function preview(message: Message | undefined, me: string, senderName: string): string {
  if (!message) return "No messages yet.";
  const who = message.senderId === me ? "You" : senderName;
  const cards = message.products?.length ?? message.productIds?.length ?? 0;
  const media = message.mediaIds?.length ?? 0;
  const what =
    message.text ||
    [cards && `${cards} product${cards > 1 ? "s" : ""}`, media && `${media} image${media > 1 ? "s" : ""}`]
      .filter(Boolean)
      .join(", ");
  return `${who}: ${what}`;
}

function ConversationRow({ conversation }: { conversation: Conversation }) {
  const me = session()?.user.id ?? "";
  const others = (conversation.participantIds ?? []).filter((id) => id !== me);
  const names = useNames(others);
  const unread = conversation.unreadCount ?? 0;
  const last = conversation.lastMessage;
  const senderName = last?.sender?.displayName || (last?.sender?.username ? `@${last.sender.username}` : "Someone");
  const title = others.length === 0 ? "Only you" : names ?? "Loading names…";
  return (
    <li class={unread > 0 ? "conversation-row unread" : "conversation-row"}>
      <a href={`/messages/${conversation.id}`}>
        <span class="conversation-names">{title}</span>
        {unread > 0 && (
          <span class="unread-mark">
            {unread >= 100 ? "99+" : unread} unread
          </span>
        )}
        <span class="conversation-preview">{preview(last, me, senderName)}</span>
      </a>
      {conversation.updatedAt && <When at={conversation.updatedAt} />}
    </li>
  );
}
