/** A word for a POSIX shell on the host: single-quoted, so nothing in it is expanded. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
