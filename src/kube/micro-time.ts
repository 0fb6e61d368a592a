/** RFC 3339 with exactly six fractional digits, as MicroTime fields require (toISOString gives three). */
export function microTime(d = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
