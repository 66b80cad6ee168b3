import { useEffect, useState } from "preact/hooks";
import { ApiError, networkError, unwrap } from "../api/client";
import { endIfUnauthenticated } from "../session";

type Result<T> = { data?: T; error?: unknown; response: Response };

/** Runs an openapi-fetch call: its data, or an ApiError carrying the API's message. */
export async function call<T>(request: Promise<Result<T>>): Promise<T> {
  const result = await request.catch((cause) => Promise.reject(networkError(cause)));
  return unwrap(result);
}

/** An error as the page shows it; a 401 also signs the tab out. */
export function failure(cause: unknown): ApiError {
  endIfUnauthenticated(cause);
  return networkError(cause);
}

export type Resource<T> = {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => Promise<void>;
  set: (data: T) => void;
};

/** Loads something when the page opens (and again on reload), keeping the last good value. */
export function useResource<T>(load: () => Promise<T>, deps: unknown[]): Resource<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);

  async function reload() {
    setLoading(true);
    setError(null);
    try {
      setData(await load());
    } catch (cause) {
      setError(failure(cause));
    } finally {
      setLoading(false);
    }
  }

  useEffect(() => void reload(), deps);
  return { data, error, loading, reload, set: setData };
}

/** A fresh key for one attempt at something the server does once per key. */
export function newIdempotencyKey(): string {
  // getRandomValues works on plain-http origins too, unlike randomUUID.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
