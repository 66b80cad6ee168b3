// The conversations calls the messages pages make, typed by the generated schema.
import { api, ApiError, networkError, unwrap, type Schemas, type User } from "../api/client";
import { authorized, endIfUnauthenticated } from "../session";

export type Conversation = Schemas["aviary.conversations.v1.Conversation"];
export type Message = Schemas["aviary.conversations.v1.Message"];
export type Product = Schemas["aviary.catalog.v1.Product"];

type Result<T> = { data?: T; error?: unknown; response: Response };

async function call<T>(request: Promise<Result<T>>): Promise<T> {
  return unwrap(await request.catch((cause) => Promise.reject(networkError(cause))));
}

/** An error as a page shows it; a 401 also signs the tab out. */
export function failure(cause: unknown): ApiError {
  endIfUnauthenticated(cause);
  return networkError(cause);
}

export async function listConversations(pageToken?: string, pageSize = 20) {
  const data = await call(
    api.GET("/v1/conversations", { params: { query: { pageSize, pageToken } }, headers: await authorized() }),
  );
  return { conversations: data.conversations ?? [], nextPageToken: data.nextPageToken ?? "" };
}

export async function getConversation(conversationId: string): Promise<Conversation> {
  return call(
    api.GET("/v1/conversations/{conversationId}", { params: { path: { conversationId } }, headers: await authorized() }),
  );
}

export async function listMessages(conversationId: string, pageToken?: string) {
  const data = await call(
    api.GET("/v1/conversations/{conversationId}/messages", {
      params: { path: { conversationId }, query: { pageSize: 30, pageToken } },
      headers: await authorized(),
    }),
  );
  return { messages: data.messages ?? [], nextPageToken: data.nextPageToken ?? "" };
}

export type Draft = { text: string; productIds: string[]; clientMessageId: string };

export async function sendMessage(conversationId: string, draft: Draft): Promise<Message> {
  return call(
    api.POST("/v1/conversations/{conversationId}/messages", {
      params: { path: { conversationId } },
      body: { text: draft.text, productIds: draft.productIds, clientMessageId: draft.clientMessageId },
      headers: await authorized(),
    }),
  );
}

export async function markRead(conversationId: string, upToId?: string): Promise<void> {
  await call(
    api.POST("/v1/conversations/{conversationId}:markRead", {
      params: { path: { conversationId } },
      body: { upToId },
      headers: await authorized(),
    }),
  );
}

export async function leaveConversation(conversationId: string): Promise<void> {
  await call(
    api.POST("/v1/conversations/{conversationId}:leave", {
      params: { path: { conversationId } },
      body: {},
      headers: await authorized(),
    }),
  );
}

export async function searchProducts(q: string): Promise<Product[]> {
  const data = await call(
    api.GET("/v1/search/products", { params: { query: { q, pageSize: 10 } }, headers: await authorized() }),
  );
  return (data.products ?? []).filter((product) => product.active !== false);
}

// People by id, fetched once per page load: a conversation names its
// participants only by id. A 404 is an account that is gone.
const people = new Map<string, Promise<User | null>>();

export function person(userId: string): Promise<User | null> {
  let known = people.get(userId);
  if (!known) {
    known = (async () => {
      try {
        return await call(api.GET("/v1/users/{userId}", { params: { path: { userId } }, headers: await authorized() }));
      } catch (cause) {
        if (cause instanceof ApiError && cause.status === 404) return null;
        people.delete(userId);
        throw cause;
      }
    })();
    people.set(userId, known);
  }
  return known;
}

export const DELETED_ACCOUNT = "Deleted account";

export function displayName(user: User | null | undefined): string {
  if (!user) return DELETED_ACCOUNT;
  return user.displayName || (user.username ? `@${user.username}` : DELETED_ACCOUNT);
}

/** Ids are time-ordered 64-bit decimals: compare them as numbers. */
export function olderFirst(a: { id?: string }, b: { id?: string }): number {
  const x = BigInt(a.id ?? "0");
  const y = BigInt(b.id ?? "0");
  return x < y ? -1 : x > y ? 1 : 0;
}

/** A fresh key for one message, so a retry or a second click sends it once. */
export function newClientMessageId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
