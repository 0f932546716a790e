/**
 * Control characters (C0, DEL, C1) and the bidirectional-text controls. From
 * a bundle, a compose file, an FTP listing or an engine answer, an ESC
 * sequence would repaint the operator's terminal, a CR overwrite the line, a
 * bidi override reorder what is read.
 */
const CONTROL = /[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
const CONTROL_IN_TEXT = /(?![\n\t])[\p{Cc}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;
/** `\u001b`: plain to read, and the same escape JSON uses, so a JSON line stays valid JSON. */
const escaped = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** One field of untrusted text, made safe for a terminal or a log line: every control character escaped, line breaks included. */
export const printable = (s: string): string => s.replace(CONTROL, escaped);

/** A block of output that airlock lays out in lines itself: as `printable`, but line breaks and tabs stay. */
export const printableText = (s: string): string => s.replace(CONTROL_IN_TEXT, escaped);
