// Post text rules, as the posts service applies them (services/posts/text.py):
// a length is the number of Unicode code points of the text's NFC form, so
// "é" typed as e + combining accent is one, an emoji outside the BMP is one.
export const MAX_POST_CHARS = 280;

// Characters that render as nothing: text made only of these and whitespace is empty.
const INVISIBLE = /[\u200b\u200c\u200d\u2060\ufeff\u00ad]/g;

export function postLength(text: string): number {
  return [...text.normalize("NFC")].length;
}

export function isBlank(text: string): boolean {
  return text.replace(INVISIBLE, "").trim() === "";
}
