/** How a call's query string, filters and path names are written for the Engine API. */

export type QueryValue = string | number | boolean | readonly string[] | undefined | null;
export type Query = Record<string, QueryValue>;

/** Filter values as the API wants them: `{"label":["k=v"]}`. */
export type Filters = Record<string, string | readonly string[] | undefined>;

export function encodeFilters(filters: Filters | undefined): string | undefined {
  if (!filters) return undefined;
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(filters)) {
    if (v === undefined) continue;
    out[k] = typeof v === 'string' ? [v] : [...v];
  }
  return Object.keys(out).length === 0 ? undefined : JSON.stringify(out);
}

/** `{a: 'b', c: undefined}` → `['a=b', 'c']`, the form label filters take. */
export function labelFilter(labels: Record<string, string | undefined>): string[] {
  return Object.entries(labels).map(([k, v]) => (v === undefined ? k : `${k}=${v}`));
}

export function encodeQuery(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    if (typeof v === 'boolean') params.append(k, v ? '1' : '0');
    else if (typeof v === 'string' || typeof v === 'number') params.append(k, String(v));
    else for (const item of v) params.append(k, item);
  }
  const s = params.toString();
  return s ? `?${s}` : '';
}

/** Path segment for a name that may contain `/`, `:` or `@` (image refs); the daemon routes on `.*`. */
export function pathName(name: string): string {
  return encodeURIComponent(name).replace(/%2F/gi, '/').replace(/%3A/gi, ':').replace(/%40/g, '@');
}
