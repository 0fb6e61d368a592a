/**
 * A tenant's path (a policy's `path` or `restorePath`, a liveness probe's `httpGet.path`) as the request
 * target of an HTTP request, sent the way the kubelet's Go net/url sends it. The API server admits paths
 * that node's `http.request` throws on (anything outside Latin-1, a space): the kubelet percent-encodes them,
 * and so must we, or a probe the kubelet runs fine takes the helper down.
 */
export type RequestPath =
  | { ok: true; path: string }
  | {
      ok: false;
      /** A sentence naming the value, what is wrong with it and what is allowed. */
      problem: string;
      /** What is wrong, for a caller that names the value itself: `contains the control character U+0001 ...`. */
      reason: string;
    };

/**
 * What Go's `URL.EscapedPath` leaves as it is in a path (its `validEncoded`): unreserved characters, the
 * sub-delimiters, ':' '@' '/' and the brackets. Everything else is sent percent-encoded.
 */
const PATH_AS_IS = /[A-Za-z0-9\-._~!$&'()*+,;=:@/[\]]/;
/** Go keeps the query as it was written; only what no request line can carry is encoded here. */
const QUERY_AS_IS = /[\x21-\x7e]/;
const ESCAPE = /^%[0-9A-Fa-f]{2}/;
const CONTROL = /[\x00-\x1f\x7f]/;

export const ALLOWED_PATH =
  'a path that starts with / and has no control characters (U+0000-U+001F, U+007F); other characters are sent percent-encoded as UTF-8';

/** What JSON leaves as it is but a terminal or an Event reader would act on: DEL, C1, line and bidi controls. */
const INVISIBLE = /[\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * A tenant's value for a message, log line or Event: quoted and escaped (a newline must not split a log line,
 * a bidi override must not turn the text around it) and cut short.
 */
export function quoted(value: string, max = 80): string {
  const cut = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(cut).replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function encode(ch: string): string {
  // A lone surrogate becomes U+FFFD, as Go's JSON decoding turns it into before the kubelet sees it.
  let out = '';
  for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

function escapePart(part: string, asIs: RegExp): string {
  let out = '';
  for (let i = 0; i < part.length;) {
    // By code point: a character outside the BMP is one UTF-8 sequence, not two encoded surrogates.
    const ch = String.fromCodePoint(part.codePointAt(i)!);
    if (ch === '%' && ESCAPE.test(part.slice(i, i + 3))) {
      // A valid escape is kept, as Go keeps it; a lone '%' is encoded below like any other character.
      out += part.slice(i, i + 3);
      i += 3;
      continue;
    }
    out += ch !== '%' && asIs.test(ch) ? ch : encode(ch);
    i += ch.length;
  }
  return out;
}

const refused = (what: string, reason: string): RequestPath => ({
  ok: false,
  problem: `${what} ${reason}; allowed: ${ALLOWED_PATH}`,
  reason,
});

/**
 * Turns a tenant's path into a request target (pure). It must start with '/'; control characters are
 * refused (Go's url.Parse refuses them too, and a header-splitting newline is never what an app meant);
 * everything outside printable ASCII is percent-encoded as UTF-8, valid `%XX` escapes are kept. A fragment
 * is dropped, as the kubelet never sends one. Idempotent: its own output comes back unchanged.
 *
 * Go re-encodes the whole path when one character needs it, which turns an escaped '/' (`%2F`) into '/'; this
 * keeps every valid escape as written instead, which means the same to any app that decodes its path.
 */
export function requestPath(raw: unknown): RequestPath {
  if (typeof raw !== 'string') return refused('the path', 'is not a string');
  if (!raw.startsWith('/')) return refused(`path ${quoted(raw)}`, 'does not start with /');
  const control = CONTROL.exec(raw);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, '0');
    return refused(
      `path ${quoted(raw)}`,
      `contains the control character U+${code} at position ${control.index}`,
    );
  }
  const hash = raw.indexOf('#');
  const target = hash < 0 ? raw : raw.slice(0, hash);
  const question = target.indexOf('?');
  if (question < 0) return { ok: true, path: escapePart(target, PATH_AS_IS) };
  return {
    ok: true,
    path: `${escapePart(target.slice(0, question), PATH_AS_IS)}?${escapePart(target.slice(question + 1), QUERY_AS_IS)}`,
  };
}
