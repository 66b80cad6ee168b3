import { useEffect, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Schemas } from "../api/client";
import { setUnreadCount, subscribe, useUnreadCount } from "../live";
import { authorized, endIfUnauthenticated } from "../session";
import { fullTime, shortTime, useMinuteClock } from "../time";

type Notice = Schemas["aviary.notifications.v1.Notification"];

async function fetchNotices(pageToken?: string) {
  const result = await api
    .GET("/v1/notifications", { params: { query: { pageSize: 30, pageToken } }, headers: await authorized() })
    .catch((cause) => Promise.reject(networkError(cause)));
  const data = unwrap(result);
  return { notices: data.notifications ?? [], nextPageToken: data.nextPageToken ?? "", unread: data.unreadCount ?? 0 };
}

async function markRead(upToId?: string) {
  const result = await api
    .POST("/v1/notifications:markRead", { body: { upToId }, headers: await authorized() })
    .catch((cause) => Promise.reject(networkError(cause)));
  unwrap(result);
}

function target(notice: Notice): string | null {
  if (notice.postId) return `/posts/${notice.postId}`;
  if (notice.orderId) return `/orders/${notice.orderId}`;
  if (notice.conversationId) return `/conversations/${notice.conversationId}`;
  return null;
}

/** The caller's notifications, newest first, kept current by the live stream. */
export function NotificationsPage() {
  const [notices, setNotices] = useState<Notice[] | null>(null);
  const [nextPageToken, setNextPageToken] = useState("");
  const unread = useUnreadCount();
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);

  async function load(pageToken?: string) {
    setLoading(true);
    setError(null);
    try {
      const page = await fetchNotices(pageToken);
      setNotices((known) => (pageToken && known ? [...known, ...page.notices] : page.notices));
      setNextPageToken(page.nextPageToken);
      setUnreadCount(page.unread);
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      setLoading(false);
    }
  }

  async function markAllRead() {
    setError(null);
    try {
      await markRead(notices?.[0]?.id);
      setNotices((known) => (known ?? []).map((n) => ({ ...n, read: true })));
      setUnreadCount(0);
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    }
  }

  useEffect(() => void load(), []);

  // Live: a new or grown notice goes on top (replacing its older self), a withdrawn one goes.
  useEffect(
    () =>
      subscribe("notifications", {
        onEvent: (event) => {
          const notice = event.notification;
          const gone = new Set([event.removedId, event.replacesId, notice?.id].filter(Boolean));
          setNotices((known) => {
            if (!known) return known;
            const rest = known.filter((n) => !gone.has(n.id));
            return notice ? [notice, ...rest] : rest;
          });
        },
      }),
    [],
  );

  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Notifications
      </h1>
      <div class="toolbar">
        <p role="status">{unread === 0 ? "All caught up." : `${unread} unread`}</p>
        {unread > 0 && (
          <button type="button" class="secondary" onClick={markAllRead}>
            Mark all as read
          </button>
        )}
      </div>
      {error && (
        <div class="error" role="alert">
          <p>{error.message}</p>
          <button type="button" onClick={() => load(notices ? nextPageToken || undefined : undefined)}>
            Try again
          </button>
        </div>
      )}
      {notices && notices.length === 0 && !loading && <p class="empty">No notifications yet.</p>}
      {notices && notices.length > 0 && (
        <ol class="notices" aria-label="Notifications" aria-busy={loading}>
          {notices.map((notice) => (
            <NoticeItem key={notice.id} notice={notice} />
          ))}
        </ol>
      )}
      {loading && (
        <p class="loading" role="status">
          Loading notifications…
        </p>
      )}
      {!loading && nextPageToken && (
        <button type="button" class="more" onClick={() => load(nextPageToken)}>
          Show older notifications
        </button>
      )}
    </section>
  );
}

function NoticeItem({ notice }: { notice: Notice }) {
  const href = target(notice);
  const when = notice.createTime ? new Date(notice.createTime) : null;
  const text = notice.text || "Something happened.";
  const now = useMinuteClock();
  return (
    <li class={notice.read ? "notice-item" : "notice-item unread"}>
      {!notice.read && <span class="sr-only">Unread: </span>}
      {href ? <a href={href}>{text}</a> : <span>{text}</span>}
      {when && (
        <>
          {" · "}
          <time dateTime={notice.createTime} title={fullTime(when)}>
            <span aria-hidden="true">{shortTime(when, now)}</span>
            <span class="sr-only">{fullTime(when)}</span>
          </time>
        </>
      )}
    </li>
  );
}
