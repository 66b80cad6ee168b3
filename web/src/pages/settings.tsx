import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, networkError, unwrap } from "../api/client";
import { authorized, endIfUnauthenticated, endSession, session } from "../session";
import { navigate } from "../router";

export const ACCOUNT_DELETED = "Your account was deleted. Its posts and profile are gone; thank you for using Aviary.";

function asApiError(cause: unknown): ApiError {
  return cause instanceof ApiError ? cause : networkError(cause);
}

/** A refusal with its text focused, so a screen reader reads it at once. */
function Alert({ error, id }: { error: ApiError; id: string }) {
  const ref = useRef<HTMLParagraphElement>(null);
  useEffect(() => ref.current?.focus(), [error]);
  return (
    <p class="error" role="alert" tabIndex={-1} ref={ref} id={id}>
      {error.message}
    </p>
  );
}

type PasswordFieldProps = {
  id: string;
  label: string;
  value: string;
  onInput: (value: string) => void;
  autocomplete: "current-password" | "new-password";
  /** What the API said is wrong with this field, if anything. */
  problem?: string;
  hint?: ComponentChildren;
};

function PasswordField({ id, label, value, onInput, autocomplete, problem, hint }: PasswordFieldProps) {
  const describedBy = [hint ? `${id}-hint` : "", problem ? `${id}-error` : ""].filter(Boolean).join(" ");
  return (
    <>
      <label for={id}>{label}</label>
      <input
        id={id}
        type="password"
        autocomplete={autocomplete}
        required
        value={value}
        onInput={(e) => onInput(e.currentTarget.value)}
        aria-invalid={problem ? true : undefined}
        aria-describedby={describedBy || undefined}
      />
      {hint && (
        <p class="hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {problem && (
        <p class="field-error" id={`${id}-error`}>
          {problem}
        </p>
      )}
    </>
  );
}

async function changePassword(currentPassword: string, newPassword: string): Promise<number> {
  const result = await api
    .POST("/v1/users/me:changePassword", { body: { currentPassword, newPassword }, headers: await authorized() })
    .catch((cause) => Promise.reject(networkError(cause)));
  return unwrap(result).revokedSessions ?? 0;
}

function ChangePassword() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<string | null>(null);

  async function submit(event: Event) {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const revoked = await changePassword(current, next);
      // The server keeps this tab's session: only the others end.
      const others = revoked === 1 ? "1 other session was" : `${revoked} other sessions were`;
      setDone(`Your password was changed. ${others} logged out; you stay logged in here.`);
      setCurrent("");
      setNext("");
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(asApiError(cause));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="settings-part" aria-labelledby="password-title">
      <h2 id="password-title">Change password</h2>
      <form onSubmit={submit} noValidate aria-busy={busy}>
        {error && <Alert error={error} id="password-form-error" />}
        <PasswordField
          id="current-password"
          label="Current password"
          value={current}
          onInput={setCurrent}
          autocomplete="current-password"
          problem={error?.fields.currentPassword}
        />
        <PasswordField
          id="new-password"
          label="New password"
          value={next}
          onInput={setNext}
          autocomplete="new-password"
          problem={error?.fields.newPassword}
          hint="8 to 128 characters; a few unrelated words make a good one. Your other sessions will be logged out."
        />
        <button type="submit" disabled={busy}>
          {busy ? "Changing password…" : "Change password"}
        </button>
        <p role="status" class={done ? "notice" : "sr-only"}>
          {done ?? ""}
        </p>
      </form>
    </section>
  );
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

// The `complete` record is short: the export's last few KB hold all of it.
const TAIL_BYTES = 64 * 1024;

/** The export as a file's contents, refused unless its last line is the `complete`
 * record (an export cut short by an error ends like a whole one over HTTP). The
 * body stays a Blob, so a large export is never copied into one string. */
async function fetchExport(): Promise<{ file: Blob; counts: string }> {
  const result = await api
    .GET("/v1/users/me:export", { headers: await authorized(), parseAs: "blob" })
    .catch((cause) => Promise.reject(networkError(cause)));
  const body = unwrap(result) as unknown as Blob;
  const tail = await body.slice(Math.max(0, body.size - TAIL_BYTES)).text();
  const lastLine = tail.trimEnd().split("\n").pop() ?? "";
  let last: { complete?: { postCount?: number; followCount?: number; orderCount?: number } } = {};
  try {
    last = JSON.parse(lastLine);
  } catch {
    // A half-written line: incomplete, like a missing last record.
  }
  if (!last.complete) throw new ApiError("The export was cut short before its end; nothing was saved. Try again.", 0);
  const { postCount = 0, followCount = 0, orderCount = 0 } = last.complete;
  const file = new Blob([body], { type: "application/x-ndjson" });
  const counts = [plural(postCount, "post"), plural(followCount, "follow"), plural(orderCount, "order")];
  return { file, counts: counts.join(", ") };
}

/** Saves `file` through a temporary object URL on a download link. */
function saveFile(file: Blob, filename: string): void {
  const url = URL.createObjectURL(file);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.click();
  // The download has its own reference by now; the URL is not needed again.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function DownloadData({ username }: { username: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<string | null>(null);

  async function download() {
    if (busy) return;
    setBusy(true);
    setError(null);
    setDone(null);
    try {
      const { file, counts } = await fetchExport();
      const day = new Date().toISOString().slice(0, 10);
      const filename = `aviary-${username}-${day}.ndjson`;
      saveFile(file, filename);
      setDone(`Your data was saved as ${filename} (${counts}).`);
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(asApiError(cause));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section class="settings-part" aria-labelledby="export-title">
      <h2 id="export-title">Download my data</h2>
      <p>
        A file with your profile, posts, the accounts you follow and your orders, one JSON object per line (NDJSON).
      </p>
      {error && <Alert error={error} id="export-error" />}
      <button type="button" onClick={() => void download()} disabled={busy}>
        {busy ? "Preparing your data…" : "Download my data"}
      </button>
      <p role="status" class={done ? "notice" : "sr-only"}>
        {done ?? ""}
      </p>
    </section>
  );
}

async function deleteAccount(password: string): Promise<void> {
  const result = await api
    .POST("/v1/users/me:delete", { body: { password }, headers: await authorized() })
    .catch((cause) => Promise.reject(networkError(cause)));
  unwrap(result);
}

function DeleteAccount() {
  const [confirming, setConfirming] = useState(false);
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const startRef = useRef<HTMLButtonElement>(null);
  const passwordRef = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (confirming) passwordRef.current?.querySelector("input")?.focus();
  }, [confirming]);

  function cancel() {
    setConfirming(false);
    setPassword("");
    setError(null);
    // The form that held focus is gone: focus goes back to what opened it.
    setTimeout(() => startRef.current?.focus());
  }

  async function submit(event: Event) {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await deleteAccount(password);
      endSession(ACCOUNT_DELETED);
      navigate("/", { replace: true });
    } catch (cause) {
      endIfUnauthenticated(cause);
      setError(asApiError(cause));
      setBusy(false);
    }
  }

  return (
    <section class="settings-part danger-zone" aria-labelledby="delete-title">
      <h2 id="delete-title">Delete account</h2>
      <p>
        This deletes your account at once and cannot be undone: your profile, posts, likes and follows are removed,
        every session ends, and your username cannot be taken again for 30 days. Your orders are kept without your name,
        and messages you sent stay, shown as from a deleted account.
      </p>
      {!confirming ? (
        <button type="button" class="danger" ref={startRef} onClick={() => setConfirming(true)}>
          Delete my account…
        </button>
      ) : (
        <form onSubmit={submit} noValidate aria-busy={busy} aria-labelledby="delete-confirm-title">
          <h3 id="delete-confirm-title">Are you sure? Type your password to confirm</h3>
          {error && <Alert error={error} id="delete-error" />}
          <div ref={passwordRef}>
            <PasswordField
              id="delete-password"
              label="Your password"
              value={password}
              onInput={setPassword}
              autocomplete="current-password"
              problem={error?.fields.password}
            />
          </div>
          <div class="confirm">
            <button type="submit" class="danger" disabled={busy || !password}>
              {busy ? "Deleting…" : "Delete my account for good"}
            </button>
            <button type="button" class="secondary" onClick={cancel} disabled={busy}>
              Cancel
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

/** The account's settings: password, a copy of one's data, and deleting the account. */
export function SettingsPage() {
  const username = session()?.user.username ?? "account";
  return (
    <section class="settings" aria-labelledby="page-title">
      <h1 id="page-title" tabIndex={-1}>
        Settings
      </h1>
      <ChangePassword />
      <DownloadData username={username} />
      <DeleteAccount />
    </section>
  );
}
