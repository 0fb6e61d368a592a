import { validateHeaderValue } from 'node:http';

/**
 * An app's header value before it is sent on, or `fallback` if no header can carry it. node's `request()`
 * throws at once on such a value; the value is the app's to choose, so it must never be what stops a pull or
 * a restore. Longer than `maxLength`: the fallback too, since it is stored with every copy.
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

/** `type/subtype` in RFC 9110's token characters; parameters after a ';' are left as they are. */
const MEDIA_TYPE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*(;|$)/;

/**
 * The content type of an app's state as it is sent on to the helpers and back to the app at a restore, or
 * `application/octet-stream`. Not only a value a header can carry: the helpers answer 415 to one that is no
 * media type (an empty one, `text`), and an app that sent such a type once had every pull fail, blamed on
 * the helpers (HelperUnavailable).
 */
export function contentTypeOr(value: unknown, fallback = 'application/octet-stream'): string {
  const v = headerValueOr(value, fallback);
  return MEDIA_TYPE.test(v) ? v : fallback;
}
