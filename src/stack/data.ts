/** Secret and config data as bytes, whether given as bytes or as the API's base64. */
export function dataOf(d: string | Uint8Array | undefined): Buffer {
  if (d === undefined) return Buffer.alloc(0);
  return typeof d === 'string' ? Buffer.from(d, 'base64') : Buffer.from(d);
}
