import { useEffect, useRef, useState } from "preact/hooks";
import { logOut, onSessionChange, session } from "./session";
import { navigate, onLinkClick, usePath } from "./router";
import { AuthPage } from "./pages/auth";
import { HomePage } from "./pages/home";
import { PostPage } from "./pages/post";

function useSession() {
  const [value, setValue] = useState(session());
  useEffect(() => onSessionChange(setValue), []);
  return value;
}

/** Which page a path shows, and where a signed-in or signed-out person belongs instead. */
type Route = { page: "login" | "signup" | "home" | "post" | "missing"; redirect?: string; id?: string };

function route(path: string, signedIn: boolean): Route {
  if (path === "/" || path === "/signup") {
    return signedIn ? { page: "home", redirect: "/home" } : { page: path === "/" ? "login" : "signup" };
  }
  if (path === "/home") return signedIn ? { page: "home" } : { page: "login", redirect: "/" };
  const post = /^\/posts\/(\d{1,20})$/.exec(path);
  if (post) return { page: "post", id: post[1] };
  return { page: "missing" };
}

const TITLES = { login: "Log in", signup: "Sign up", home: "Home", post: "Post", missing: "Not found" };

export function App() {
  const current = useSession();
  const path = usePath();
  const { page, redirect, id } = route(path, current !== null);
  const mainRef = useRef<HTMLElement>(null);

  useEffect(() => {
    if (redirect) navigate(redirect, { replace: true });
  }, [redirect]);

  // A page change is announced by moving focus to its heading.
  useEffect(() => {
    document.title = `${TITLES[page]} · Aviary`;
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
        {!current && (page === "post" || page === "missing") && <a href="/">Log in</a>}
        {current && (
          <nav aria-label="Account">
            <span class="me">@{current.user.username}</span>
            <button type="button" onClick={() => void logOut().then(() => navigate("/", { replace: true }))}>
              Log out
            </button>
          </nav>
        )}
      </header>
      <main id="main" ref={mainRef}>
        {page === "login" && <AuthPage key="login" mode="login" />}
        {page === "signup" && <AuthPage key="signup" mode="signup" />}
        {page === "home" && current && <HomePage key={current.user.id} />}
        {page === "post" && id && <PostPage key={id} postId={id} />}
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
    </div>
  );
}
