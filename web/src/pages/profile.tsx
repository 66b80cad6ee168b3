import { useEffect, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap, type Post, type Schemas, type User } from "../api/client";
import { PostItem } from "../components/post";
import { authorized, endIfUnauthenticated, optionallyAuthorized, session } from "../session";
import { navigate } from "../router";
import { conversationWith } from "../messages/start";

type Flag = "followedByMe" | "blockedByMe" | "mutedByMe" | "followsMe";
type Reason = NonNullable<Schemas["aviary.moderation.v1.CreateReportRequest"]["reason"]>;

const REASONS: { value: Reason; label: string }[] = [
  { value: "REPORT_REASON_SPAM", label: "Spam" },
  { value: "REPORT_REASON_ABUSE", label: "Abuse or harassment" },
  { value: "REPORT_REASON_ILLEGAL", label: "Illegal content" },
  { value: "REPORT_REASON_IMPERSONATION", label: "Impersonation" },
  { value: "REPORT_REASON_OTHER", label: "Something else" },
];

/** The viewer's standing with a user, as the profile says it (false when unset). */
function flag(user: User, name: Flag): boolean {
  return user[name] === true;
}

async function run<T>(request: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  return unwrap(await request.catch((cause) => Promise.reject(networkError(cause))));
}

async function lookUp(username: string): Promise<User> {
  return run(api.GET("/v1/users:lookup", { params: { query: { username } }, headers: await optionallyAuthorized() }));
}

async function postsOf(userId: string, pageToken?: string) {
  const data = await run(
    api.GET("/v1/users/{userId}/posts", {
      params: { path: { userId }, query: { pageSize: 20, pageToken } },
      headers: await optionallyAuthorized(),
    }),
  );
  return { posts: data.posts ?? [], nextPageToken: data.nextPageToken ?? "" };
}

/** A person's profile: who they are, their posts (paged), and follow, mute, block and report. */
export function ProfilePage({ username }: { username: string }) {
  const [user, setUser] = useState<User | null>(null);
  const [posts, setPosts] = useState<Post[] | null>(null);
  const [nextPageToken, setNextPageToken] = useState("");
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<ApiError | null>(null);

  /** Without a token, the first page (and the profile again, unless keepProfile). */
  async function load(pageToken?: string, keepProfile = false) {
    setLoading(true);
    setError(null);
    try {
      const found = user && (pageToken || keepProfile) ? user : await lookUp(username);
      if (!pageToken && !keepProfile) setUser(found);
      const page = await postsOf(found.id ?? "", pageToken);
      setPosts((known) => (pageToken && known ? [...known, ...page.posts] : page.posts));
      setNextPageToken(page.nextPageToken);
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => void load(), [username]);

  const name = user?.displayName || user?.username || username;
  return (
    <section aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        {user ? name : `@${username}`}
      </h1>
      {error && (
        <div class="error" role="alert">
          <p>{error.status === 404 ? `There is no account called @${username}.` : error.message}</p>
          {error.status !== 404 && (
            <button type="button" onClick={() => load(posts ? nextPageToken || undefined : undefined)}>
              Try again
            </button>
          )}
        </div>
      )}
      {user && <ProfileCard user={user} onChange={setUser} onBlocked={() => void load(undefined, true)} />}
      {loading && (
        <p class="loading" role="status">
          Loading…
        </p>
      )}
      {posts && (
        <section aria-labelledby="posts-title">
          <h2 id="posts-title">Posts</h2>
          {posts.length === 0 && !loading ? (
            <p class="empty">No posts to show.</p>
          ) : (
            <ol class="timeline" aria-label={`Posts by ${name}`} aria-busy={loading}>
              {posts.map((post) => (
                <PostItem key={post.id} post={post} />
              ))}
            </ol>
          )}
          {!loading && nextPageToken && (
            <button type="button" class="more" onClick={() => load(nextPageToken)}>
              Show older posts
            </button>
          )}
        </section>
      )}
    </section>
  );
}

function ProfileCard({ user, onChange, onBlocked }: { user: User; onChange: (user: User) => void; onBlocked: () => void }) {
  const me = session()?.user;
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [reporting, setReporting] = useState(false);
  const userId = user.id ?? "";
  const path = { params: { path: { userId } } };

  async function toggle(name: Flag, on: () => Promise<unknown>, off: () => Promise<unknown>) {
    if (busy) return;
    setBusy(true);
    setError(null);
    const was = flag(user, name);
    try {
      await (was ? off() : on());
      const followerCount = (user.followerCount ?? 0) + (name === "followedByMe" ? (was ? -1 : 1) : 0);
      // A block drops follows both ways.
      const dropsFollow = name === "blockedByMe" && !was && flag(user, "followedByMe");
      onChange({
        ...user,
        [name]: !was,
        ...(dropsFollow ? { followedByMe: false, followerCount: Math.max(0, followerCount - 1) } : { followerCount }),
      });
      if (name === "blockedByMe") onBlocked();
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      setBusy(false);
    }
  }

  async function message() {
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      navigate(`/messages/${await conversationWith(userId)}`);
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
      setBusy(false);
    }
  }

  const following = flag(user, "followedByMe");
  const muted = flag(user, "mutedByMe");
  const blocked = flag(user, "blockedByMe");
  const other = me && me.id !== userId;
  return (
    <div class="profile">
      <p class="handle">
        @{user.username}
        {flag(user, "followsMe") && <span class="badge-soft"> Follows you</span>}
      </p>
      {user.bio && <p class="bio">{user.bio}</p>}
      <ul class="stats" aria-label="Counts">
        <li>
          <strong>{user.postCount ?? 0}</strong> posts
        </li>
        <li>
          <strong>{user.followerCount ?? 0}</strong> followers
        </li>
        <li>
          <strong>{user.followingCount ?? 0}</strong> following
        </li>
      </ul>
      {other && (
        <div class="actions" role="group" aria-label={`Your relationship with @${user.username}`}>
          {!blocked && (
            <button
              type="button"
              aria-pressed={following}
              disabled={busy}
              onClick={() =>
                toggle(
                  "followedByMe",
                  async () => run(api.PUT("/v1/users/me/following/{userId}", { ...path, headers: await authorized() })),
                  async () => run(api.DELETE("/v1/users/me/following/{userId}", { ...path, headers: await authorized() })),
                )
              }
            >
              {following ? "Unfollow" : "Follow"}
            </button>
          )}
          {!blocked && (
            <button type="button" class="secondary" disabled={busy} onClick={message}>
              Message
            </button>
          )}
          <button
            type="button"
            class="secondary"
            aria-pressed={muted}
            disabled={busy}
            onClick={() =>
              toggle(
                "mutedByMe",
                async () => run(api.PUT("/v1/users/me/mutes/{userId}", { ...path, body: {}, headers: await authorized() })),
                async () => run(api.DELETE("/v1/users/me/mutes/{userId}", { ...path, headers: await authorized() })),
              )
            }
          >
            {muted ? "Unmute" : "Mute"}
          </button>
          <button
            type="button"
            class="secondary danger"
            aria-pressed={blocked}
            disabled={busy}
            onClick={() =>
              toggle(
                "blockedByMe",
                async () => run(api.PUT("/v1/users/me/blocks/{userId}", { ...path, headers: await authorized() })),
                async () => run(api.DELETE("/v1/users/me/blocks/{userId}", { ...path, headers: await authorized() })),
              )
            }
          >
            {blocked ? "Unblock" : "Block"}
          </button>
          <button type="button" class="secondary" aria-expanded={reporting} onClick={() => setReporting(!reporting)}>
            Report
          </button>
        </div>
      )}
      {(muted || blocked) && (
        <p class="notice" role="status">
          {blocked
            ? `You blocked @${user.username}: their posts are hidden from you and they cannot follow you.`
            : `You muted @${user.username}: their posts are hidden from your home timeline.`}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
      {reporting && <ReportForm user={user} onDone={() => setReporting(false)} />}
    </div>
  );
}

function ReportForm({ user, onDone }: { user: User; onDone: () => void }) {
  const [reason, setReason] = useState<Reason>("REPORT_REASON_SPAM");
  const [comment, setComment] = useState("");
  const [busy, setBusy] = useState(false);
  const [sent, setSent] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);

  async function submit(event: Event) {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await run(
        api.POST("/v1/reports", {
          body: { userId: user.id, reason, comment: comment.trim() || undefined },
          headers: await authorized(),
        }),
      );
      setSent(true);
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(networkError(cause));
    } finally {
      setBusy(false);
    }
  }

  if (sent) {
    return (
      <p class="notice" role="status">
        Thank you: the moderators will look at your report of @{user.username}.{" "}
        <button type="button" class="secondary" onClick={onDone}>
          Close
        </button>
      </p>
    );
  }
  return (
    <form class="report" onSubmit={submit} aria-label={`Report @${user.username}`}>
      <label for="report-reason">Reason</label>
      <select id="report-reason" value={reason} onChange={(e) => setReason(e.currentTarget.value as Reason)}>
        {REASONS.map((r) => (
          <option key={r.value} value={r.value}>
            {r.label}
          </option>
        ))}
      </select>
      <label for="report-comment">Anything the moderators should know (optional)</label>
      <textarea id="report-comment" rows={3} maxLength={1000} value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
      {error && (
        <p class="error" role="alert">
          {error.message}
        </p>
      )}
      <div class="compose-bar">
        <button type="button" class="secondary" onClick={onDone}>
          Cancel
        </button>
        <button type="submit" disabled={busy}>
          {busy ? "Sending…" : "Send report"}
        </button>
      </div>
    </form>
  );
}
