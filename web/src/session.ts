// The signed-in session. The refresh token is kept in localStorage so a
// reload stays signed in; refresh tokens work once, so rotations are
// serialized across tabs with a Web Lock and every tab reads the newest pair.
import { api, ApiError, networkError, unwrap, type Tokens, type User } from "./api/client";

const STORAGE_KEY = "aviary.session";
const SESSION_ENDED = "Your session has ended: please log in again.";
// Refresh this long before the access token expires.
const EXPIRY_MARGIN_MS = 60_000;

export type Session = {
  accessToken: string;
  refreshToken: string;
  /** Epoch ms when the access token stops being accepted. */
  expiresAt: number;
  user: User;
};

type Listener = (session: Session | null) => void;
const listeners = new Set<Listener>();
let current: Session | null = read();
// Why the last session ended, when the person did not log out themselves.
let endedBecause: string | null = null;

export function session(): Session | null {
  return current;
}

/** Why the session ended without a log-out, once: the log-in page shows it. */
export function takeEndedReason(): string | null {
  const reason = endedBecause;
  endedBecause = null;
  return reason;
}

/** Ends the tab's session without a log-out call (e.g. the account was deleted); the log-in page shows `reason`. */
export function endSession(reason: string): void {
  endedBecause = reason;
  publish(null);
}

export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function read(): Session | null {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null") as Session | null;
    return stored?.refreshToken ? stored : null;
  } catch {
    return null;
  }
}

function publish(next: Session | null): void {
  if (next) endedBecause = null;
  current = next;
  if (next) localStorage.setItem(STORAGE_KEY, JSON.stringify(next));
  else localStorage.removeItem(STORAGE_KEY);
  for (const listener of listeners) listener(next);
}

// Another tab logged in, out, or rotated the tokens.
window.addEventListener("storage", (event) => {
  if (event.key !== STORAGE_KEY) return;
  current = read();
  for (const listener of listeners) listener(current);
});

function fromTokens(tokens: Tokens): Session {
  if (!tokens.accessToken || !tokens.refreshToken || !tokens.user) {
    throw new ApiError("The server's answer had no session in it; try again.", 0);
  }
  return {
    accessToken: tokens.accessToken,
    refreshToken: tokens.refreshToken,
    expiresAt: Date.now() + (tokens.expiresIn ?? 900) * 1000,
    user: tokens.user,
  };
}

export async function signUp(username: string, password: string, displayName: string): Promise<void> {
  const result = await api
    .POST("/v1/accounts", { body: { username, password, displayName: displayName || undefined } })
    .catch((cause) => Promise.reject(networkError(cause)));
  publish(fromTokens(unwrap(result)));
}

export async function logIn(username: string, password: string): Promise<void> {
  const result = await api
    .POST("/v1/sessions", { body: { username, password } })
    .catch((cause) => Promise.reject(networkError(cause)));
  publish(fromTokens(unwrap(result)));
}

/** Ends the session on the server (its refresh token stops working) and here. */
export async function logOut(): Promise<void> {
  const ending = current;
  publish(null);
  if (!ending) return;
  try {
    await api.DELETE("/v1/sessions/current", { headers: { Authorization: `Bearer ${ending.accessToken}` } });
  } catch {
    // Signed out here already; the server's session expires on its own.
  }
}

async function withRefreshLock(task: () => Promise<string>): Promise<string> {
  if (navigator.locks) return await navigator.locks.request("aviary.session.refresh", task);
  return task();
}

/** An access token good for at least a minute, rotating the pair when needed.
 * Throws ApiError 401 (and signs out) when the session is over. */
export async function accessToken(): Promise<string> {
  const known = current;
  if (!known) throw new ApiError("You are signed out.", 401);
  if (known.expiresAt - Date.now() > EXPIRY_MARGIN_MS) return known.accessToken;
  return withRefreshLock(async () => {
    // Another tab may have rotated the pair while this one waited for the lock.
    const latest = read();
    if (!latest) {
      publish(null);
      throw new ApiError("You are signed out.", 401);
    }
    if (latest.expiresAt - Date.now() > EXPIRY_MARGIN_MS) {
      current = latest;
      return latest.accessToken;
    }
    const result = await api
      .POST("/v1/sessions:refresh", { body: { refreshToken: latest.refreshToken } })
      .catch((cause) => Promise.reject(networkError(cause)));
    if (result.response.status === 401) {
      endSession(SESSION_ENDED);
      throw new ApiError(SESSION_ENDED, 401);
    }
    const next = fromTokens(unwrap(result));
    publish(next);
    return next.accessToken;
  });
}

/** Headers for a call that needs the caller's token. */
export async function authorized(): Promise<{ Authorization: string }> {
  return { Authorization: `Bearer ${await accessToken()}` };
}

/** The caller's token for a call that also serves signed-out readers: none when signed out. */
export async function optionallyAuthorized(): Promise<{ Authorization?: string }> {
  if (!current) return {};
  try {
    return await authorized();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return {};
    throw error;
  }
}

/** A 401 on an authorized call means the session was revoked elsewhere. */
export function endIfUnauthenticated(error: unknown): void {
  if (error instanceof ApiError && error.status === 401) endSession(SESSION_ENDED);
}
