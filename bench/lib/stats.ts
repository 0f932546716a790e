/** Small statistics and formatting helpers for benchmark reports. */

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

export function fmtBytes(n: number): string {
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Decimal megabytes, as RSS limits are stated ("100 MB"). */
export const fmtMB = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;

export const fmtSec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

export const fmtRatio = (r: number): string => `${r.toFixed(2)}×`;

/** Throughput of `bytes` in `ms`, in MiB/s. */
export const fmtRate = (bytes: number, ms: number): string => `${(bytes / MiB / (ms / 1000)).toFixed(0)} MiB/s`;

/** A GitHub-flavoured markdown table. */
export function mdTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
