import { api, networkError, unwrap } from "../api/client";
import { authorized } from "../session";

/** The one-to-one conversation with this person (made now, or the one that exists): its id. */
export async function conversationWith(userId: string): Promise<string> {
  const result = await api
    .POST("/v1/conversations", { body: { participantIds: [userId] }, headers: await authorized() })
    .catch((cause) => Promise.reject(networkError(cause)));
  return unwrap(result).id ?? "";
}
