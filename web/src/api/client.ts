import createClient from "openapi-fetch";
import type { components, paths } from "./schema.gen";

export type Schemas = components["schemas"];
export type User = Schemas["aviary.identity.v1.User"];
export type Post = Schemas["aviary.posts.v1.Post"];
export type Tokens = Schemas["aviary.identity.v1.CreateSessionResponse"];

// Same origin as the API (Envoy serves both), so no CORS and no base URL to configure.
export const api = createClient<paths>({ baseUrl: window.location.origin });

// Envoy turns away a call past a service's bound at once, with 503 and
// Retry-After (the README's "Overload"): a read is asked once more after that
// wait, so a moment's burst never reaches the person. Writes are left to them.
const LONGEST_RETRY_AFTER_S = 5;
api.use({
  async onResponse({ request, response }) {
    if (response.status !== 503 || request.method !== "GET") return undefined;
    const wait = Number(response.headers.get("retry-after"));
    if (!(wait > 0 && wait <= LONGEST_RETRY_AFTER_S)) return undefined;
    await new Promise((resolve) => setTimeout(resolve, wait * 1000));
    return fetch(new Request(request));
  },
});

/** An API refusal as a person should read it: the server's own message. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** Field name -> what is wrong with it (from google.rpc.BadRequest). */
    readonly fields: Record<string, string> = {},
    /** Seconds to wait, from Retry-After on 429 and 503. */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

type FieldViolation = { field?: string; description?: string };
type ErrorBody = { message?: string; details?: { "@type"?: string; fieldViolations?: FieldViolation[] }[] };

// Envoy's own words when a service is down or restarting: not for people.
const ENVOY_UPSTREAM_FAILURE = /^(upstream connect error|no healthy upstream|upstream request timeout)/;

export function apiError(response: Response, body: unknown): ApiError {
  const error = (body ?? {}) as ErrorBody;
  const fields: Record<string, string> = {};
  for (const detail of error.details ?? []) {
    for (const violation of detail.fieldViolations ?? []) {
      if (violation.field) fields[violation.field] = violation.description ?? "";
    }
  }
  const retryAfter = Number(response.headers.get("retry-after")) || undefined;
  let message = error.message || `${response.status} ${response.statusText || "error"}`;
  if (response.status === 429 && !/try again/i.test(message)) {
    message = retryAfter ? `${message} (try again in ${retryAfter} s)` : `${message} (try again shortly)`;
  } else if (response.status >= 500 && (!error.message || ENVOY_UPSTREAM_FAILURE.test(error.message))) {
    message = "Aviary is not answering right now; try again in a moment.";
  }
  return new ApiError(message, response.status, fields, retryAfter);
}

/** The data of an openapi-fetch result, or its error thrown as an ApiError. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) throw apiError(result.response, result.error);
  return result.data as T;
}

export function networkError(cause: unknown): ApiError {
  if (cause instanceof ApiError) return cause;
  return new ApiError("Cannot reach Aviary: check your connection and try again.", 0);
}
