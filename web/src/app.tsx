import { useEffect, useRef, useState } from "preact/hooks";
import { logOut, onSessionChange, session } from "./session";
import { navigate, onLinkClick, usePath, useSearch } from "./router";
import { AuthPage } from "./pages/auth";
import { HomePage } from "./pages/home";
import { PostPage } from "./pages/post";
import { ProfilePage } from "./pages/profile";
import { NotificationsPage } from "./pages/notifications";
import { SearchPage } from "./pages/search";
import { SettingsPage } from "./pages/settings";
import { BookmarksPage } from "./pages/bookmarks";
import { HeaderMenu } from "./components/header-menu";
import { TrendsPanel } from "./components/trends";
import { useUnreadCount } from "./live";
import { ShopNav, ShopOutlet, shopRoute, type ShopRoute } from "./shop/route";
import { MessagesOutlet } from "./messages/route";

/** `compact`: the copy that stays in the bar at narrow widths, where the menu's own is hidden. */
function NotificationsLink({ compact = false }: { compact?: boolean }) {
  const unread = useUnreadCount();
  return (
    <a
      href="/notifications"
      class={compact ? "nav-link bar-notify" : "nav-link menu-notify"}
      aria-label={unread > 0 ? `Notifications, ${unread} unread` : undefined}
    >
      Notifications
      {/* The space keeps the badge's digits a word of their own, as in the label (axe compares them). */}
      {unread > 0 && " "}
      {unread > 0 && (
        <span class="badge" aria-hidden="true">
          {unread > 99 ? "99+" : unread}
        </span>
      )}
    </a>
  );
}

function useSession() {
  const [value, setValue] = useState(session());
  useEffect(() => onSessionChange(setValue), []);
  return value;
}

type Social = "profile" | "notifications" | "search" | "messages" | "conversation" | "settings" | "bookmarks";

/** Which page a path shows, and where a signed-in or signed-out person belongs instead. */
type Route = {
  page: "login" | "signup" | "home" | "post" | "missing" | "shop" | Social;
  redirect?: string;
  id?: string;
  shop?: ShopRoute;
};

function route(path: string, signedIn: boolean): Route {
  if (path === "/" || path === "/signup") {
    return signedIn ? { page: "home", redirect: "/home" } : { page: path === "/" ? "login" : "signup" };
  }
  if (path === "/home") return signedIn ? { page: "home" } : { page: "login", redirect: "/" };
  const post = /^\/posts\/(\d{1,20})$/.exec(path);
  if (post) return { page: "post", id: post[1] };
  const profile = /^\/users\/([A-Za-z0-9_]{1,15})$/.exec(path);
  if (profile) return { page: "profile", id: profile[1] };
  if (path === "/notifications") return signedIn ? { page: "notifications" } : { page: "login", redirect: "/" };
  if (path === "/search") return { page: "search" };
  if (path === "/messages") return signedIn ? { page: "messages" } : { page: "login", redirect: "/" };
  const conversation = /^\/(messages|conversations)\/(\d{1,20})$/.exec(path);
  if (conversation) {
    // Notifications link to /conversations/{id}; the page lives at /messages/{id}.
    const canonical = conversation[1] === "messages" ? undefined : `/messages/${conversation[2]}`;
    return signedIn ? { page: "conversation", id: conversation[2], redirect: canonical } : { page: "login", redirect: "/" };
  }
  if (path === "/settings") return signedIn ? { page: "settings" } : { page: "login", redirect: "/" };
  if (path === "/bookmarks") return signedIn ? { page: "bookmarks" } : { page: "login", redirect: "/" };
  const shop = shopRoute(path);
  if (shop) return signedIn || shop.signedOutOk ? { page: "shop", shop, id: path } : { page: "login", redirect: "/" };
  return { page: "missing" };
}

const TITLES = { login: "Log in", signup: "Sign up", home: "Home", post: "Post", missing: "Not found", shop: "Shop",
  profile: "Profile", notifications: "Notifications", search: "Search", messages: "Messages", conversation: "Conversation", settings: "Settings",
  bookmarks: "Bookmarks" };
const WITH_TRENDS = new Set(["home", "profile", "notifications"]);

export function App() {
  const current = useSession();
  const path = usePath();
  const search = useSearch();
  const { page, redirect, id, shop } = route(path, current !== null);
  const mainRef = useRef<HTMLElement>(null);

  useEffect(() => {
    if (redirect) navigate(redirect, { replace: true });
  }, [redirect]);

  // A page change is announced by moving focus to its heading.
  useEffect(() => {
    document.title = `${shop?.title ?? TITLES[page]} · Aviary`;
    mainRef.current?.querySelector<HTMLElement>("h1")?.focus();
  }, [page, id]);

  return (
    <div class="shell" onClick={(e) => onLinkClick(e as unknown as MouseEvent)}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="bar">
        <a class="brand" href={current ? "/home" : "/"}>
          Aviary
        </a>
        {!current && page !== "login" && page !== "signup" && <a href="/">Log in</a>}
        {current && <NotificationsLink compact />}
        {current && (
          <HeaderMenu path={path}>
            <ShopNav seller={current.user.role === "SELLER"} />
            <nav aria-label="Account">
              <a href="/search" class="nav-link">
                Search
              </a>
              <a href="/messages" class="nav-link">
                Messages
              </a>
              <NotificationsLink />
              <a href="/bookmarks" class="nav-link">
                Bookmarks
              </a>
              <a class="me" href={`/users/${current.user.username}`}>
                @{current.user.username}
              </a>
              <a href="/settings" class="nav-link">
                Settings
              </a>
              <button type="button" onClick={() => void logOut().then(() => navigate("/", { replace: true }))}>
                Log out
              </button>
            </nav>
          </HeaderMenu>
        )}
      </header>
      <main id="main" ref={mainRef}>
        {page === "login" && <AuthPage key="login" mode="login" />}
        {page === "signup" && <AuthPage key="signup" mode="signup" />}
        {page === "home" && current && <HomePage key={current.user.id} />}
        {page === "post" && id && <PostPage key={id} postId={id} />}
        {page === "profile" && id && <ProfilePage key={id.toLowerCase()} username={id} />}
        {page === "notifications" && current && <NotificationsPage key={current.user.id} />}
        {page === "search" && <SearchPage search={search} />}
        {(page === "messages" || page === "conversation") && current && (
          <MessagesOutlet conversationId={page === "conversation" ? id : undefined} />
        )}
        {page === "settings" && current && <SettingsPage key={current.user.id} />}
        {page === "bookmarks" && current && <BookmarksPage key={current.user.id} />}
        {page === "shop" && shop && <ShopOutlet route={shop} />}
        {page === "missing" && (
          <section aria-labelledby="page-title">
            <h1 id="page-title" tabIndex={-1}>
              Page not found
            </h1>
            <p>
              Nothing lives at this address. <a href="/">Go to Aviary</a>
            </p>
          </section>
        )}
      </main>
      {current && WITH_TRENDS.has(page) && (
        <aside class="side" aria-label="Trends">
          <TrendsPanel />
        </aside>
      )}
    </div>
  );
}
