/**
 * Text an app (or anything a tenant controls) answered, made fit for a status message, an Event or a log line
 * that an operator reads in a terminal: control characters (C0, DEL, C1; among them the escape that starts
 * a terminal control sequence) are shown as `\u00XX`, invalid UTF-8 as U+FFFD (by the decoder), and the text
 * is cut at `max` characters with a mark that says so. An app's error page must never rewrite what
 * `kubectl describe` shows.
 */
export function quotedText(text: string, max = 256): string {
  const shown = text.replace(
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  const chars = [...shown];
  return chars.length > max ? `${chars.slice(0, max).join('')}… (cut)` : shown;
}
