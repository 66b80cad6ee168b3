import { createContext } from "preact";

/** Provided by the Bookmarks page: the posts under it are bookmarked, and this
 * is told the id of one the reader unbookmarks there, so it leaves the list. */
export const BookmarkedList = createContext<((postId: string) => void) | null>(null);
