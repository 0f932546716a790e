/** Small text formatters shared by the human-readable outputs (byte counts: src/units/bytes.ts; untrusted text: src/units/printable.ts). */
import { printable } from '../units/printable.js';

export const shortDigest = (d: string): string => d.replace(/^sha256:/, '').slice(0, 12);

/** Left-aligned columns, two spaces apart; each cell is one line of printable text. */
export function table(rows: string[][]): string {
  if (rows.length === 0) return '';
  const cells = rows.map((r) => r.map(printable));
  const widths = cells[0]!.map((_, c) => Math.max(...cells.map((r) => (r[c] ?? '').length)));
  return cells.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ')).join('\n');
}
