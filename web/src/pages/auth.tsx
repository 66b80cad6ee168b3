import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api/client";
import { logIn, signUp, takeEndedReason } from "../session";
import { navigate } from "../router";

type Mode = "login" | "signup";

const COPY = {
  login: { title: "Log in to Aviary", submit: "Log in", busy: "Logging in…" },
  signup: { title: "Create your Aviary account", submit: "Sign up", busy: "Signing up…" },
};

export function AuthPage({ mode }: { mode: Mode }) {
  const copy = COPY[mode];
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [notice] = useState(takeEndedReason);
  const alertRef = useRef<HTMLParagraphElement>(null);

  useEffect(() => {
    if (error) alertRef.current?.focus();
  }, [error]);

  async function submit(event: Event) {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      if (mode === "signup") await signUp(username.trim(), password, displayName.trim());
      else await logIn(username.trim(), password);
      navigate("/home", { replace: true });
    } catch (cause) {
      setError(cause instanceof ApiError ? cause : new ApiError(String(cause), 0));
      setBusy(false);
    }
  }

  const fieldError = (name: string) => error?.fields[name];
  const describedBy = (name: string, hint?: string) =>
    [hint, fieldError(name) ? `${name}-error` : ""].filter(Boolean).join(" ") || undefined;

  return (
    <section class="auth" aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        {copy.title}
      </h1>
      {notice && !error && (
        <p class="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit} noValidate aria-busy={busy}>
        {error && (
          <p class="error" role="alert" tabIndex={-1} ref={alertRef} id="form-error">
            {error.message}
          </p>
        )}
        <label for="username">Username</label>
        <input
          id="username"
          name="username"
          autocomplete="username"
          autocapitalize="none"
          spellcheck={false}
          required
          value={username}
          onInput={(e) => setUsername(e.currentTarget.value)}
          aria-invalid={fieldError("username") ? true : undefined}
          aria-describedby={describedBy("username", mode === "signup" ? "username-hint" : undefined)}
        />
        {mode === "signup" && (
          <p class="hint" id="username-hint">
            3 to 15 letters, digits or _
          </p>
        )}
        {fieldError("username") && (
          <p class="field-error" id="username-error">
            {fieldError("username")}
          </p>
        )}
        {mode === "signup" && (
          <>
            <label for="display-name">Display name (optional)</label>
            <input
              id="display-name"
              name="displayName"
              autocomplete="name"
              value={displayName}
              onInput={(e) => setDisplayName(e.currentTarget.value)}
              aria-invalid={fieldError("displayName") ? true : undefined}
              aria-describedby={describedBy("displayName")}
            />
            {fieldError("displayName") && (
              <p class="field-error" id="displayName-error">
                {fieldError("displayName")}
              </p>
            )}
          </>
        )}
        <label for="password">Password</label>
        <input
          id="password"
          name="password"
          type="password"
          autocomplete={mode === "signup" ? "new-password" : "current-password"}
          required
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
          aria-invalid={fieldError("password") ? true : undefined}
          aria-describedby={describedBy("password", mode === "signup" ? "password-hint" : undefined)}
        />
        {mode === "signup" && (
          <p class="hint" id="password-hint">
            8 to 128 characters; a few unrelated words make a good one
          </p>
        )}
        {fieldError("password") && (
          <p class="field-error" id="password-error">
            {fieldError("password")}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? copy.busy : copy.submit}
        </button>
      </form>
      <p class="switch">
        {mode === "login" ? (
          <>
            New to Aviary? <a href="/signup">Create an account</a>
          </>
        ) : (
          <>
            Already have an account? <a href="/">Log in</a>
          </>
        )}
      </p>
    </section>
  );
}
