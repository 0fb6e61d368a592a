import { validateHeaderValue } from 'node:http';

/**
 * An app's header value (the content type of its state) before it is sent on, or `fallback` if no header
 * can carry it. node's `request()` throws at once on such a value; the value is the app's to choose, so it
 * must never be what stops a pull or a restore. Longer than `maxLength`: the fallback too, since it is
 * stored with every copy.
 */
export function headerValueOr(value: unknown, fallback: string, maxLength = 1024): string {
  if (typeof value !== 'string' || value.length > maxLength) return fallback;
  try {
    validateHeaderValue('x', value);
    return value;
  } catch {
    return fallback;
  }
}
