/**
 * Text an app (or anything a tenant controls) answered, made fit for a status message, an Event or a log line
 * that an operator reads in a terminal: control characters (C0, DEL, C1; among them the escape that starts a
 * terminal control sequence), line and paragraph separators and the bidirectional overrides that reorder what
 * is shown are written as `\uXXXX`; invalid UTF-8 is U+FFFD (by the decoder). Cut at `max` characters, before
 * the escaping so no escape is cut in two, with a mark that says so; `more` says the text was cut already.
 * An app's error page must never rewrite what `kubectl describe` shows.
 */
export function quotedText(text: string, max = 256, more = false): string {
  const chars = [...text];
  const cut = more || chars.length > max;
  const shown = chars
    .slice(0, max)
    .join('')
    .replace(
      /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    );
  return cut ? `${shown}… (cut)` : shown;
}
