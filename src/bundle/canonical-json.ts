/**
 * Canonical JSON: object keys sorted by code unit, no insignificant
 * whitespace, integers only. The manifest is signed as these exact bytes,
 * and a reader refuses a manifest that is not canonical, so two parsers can
 * never disagree about what was signed (duplicate keys, float spellings).
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new Error(`canonical JSON holds integers only, got ${value}`);
  }
  return value;
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
