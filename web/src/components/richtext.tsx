// Hashtags and mentions found as the posts service finds them (services/posts/text.py):
// links are skipped, a tag is "#" + word characters not glued to a word before it
// and not digits only, a mention is "@" + 1..15 of [A-Za-z0-9_].
const TOKENS =
  /(\b(?:https?:\/\/|www\.)\S+)|(?<![\p{L}\p{N}\p{M}_])#([\p{L}\p{N}\p{M}_]{1,100})(?![\p{L}\p{N}\p{M}_])|(?<![\p{L}\p{N}\p{M}_@])@([A-Za-z0-9_]{1,15})(?![A-Za-z0-9_@])/giu;

export type Piece = { text: string; kind: "plain" | "hashtag" | "mention"; value?: string };

export function pieces(text: string): Piece[] {
  const out: Piece[] = [];
  let last = 0;
  for (const match of text.matchAll(TOKENS)) {
    const [whole, url, tag, name] = match;
    if (url || (tag && /^\p{N}+$/u.test(tag))) continue;
    const at = match.index ?? 0;
    if (at > last) out.push({ text: text.slice(last, at), kind: "plain" });
    if (tag) out.push({ text: whole, kind: "hashtag", value: tag.toLowerCase() });
    else out.push({ text: whole, kind: "mention", value: name });
    last = at + whole.length;
  }
  if (last < text.length) out.push({ text: text.slice(last), kind: "plain" });
  return out;
}

/** Post text with its hashtags linked to a search and its mentions to the profile. */
export function RichText({ text, links = true }: { text: string; links?: boolean }) {
  return (
    <>
      {pieces(text).map((piece, i) => {
        if (piece.kind === "plain") return piece.text;
        if (!links) return <mark key={i} class={piece.kind}>{piece.text}</mark>;
        const href =
          piece.kind === "hashtag"
            ? `/search?q=${encodeURIComponent(`#${piece.value}`)}`
            : `/users/${encodeURIComponent(piece.value ?? "")}`;
        return (
          <a key={i} href={href} class={piece.kind}>
            {piece.text}
          </a>
        );
      })}
    </>
  );
}
