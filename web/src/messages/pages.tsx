// The messages chunk: loaded on the first visit to /messages.
import "./messages.css";
import { ConversationPage } from "./conversation";
import { ConversationsPage } from "./list";

export function MessagesPage({ conversationId }: { conversationId?: string }) {
  return conversationId ? <ConversationPage key={conversationId} conversationId={conversationId} /> : <ConversationsPage />;
}
