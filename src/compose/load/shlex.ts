/**
 * Splits a command string into words the way github.com/google/shlex does,
 * which docker/cli uses for `command:` and `entrypoint:` written as one
 * string:
 *
 * - words are separated by spaces, tabs, CR and LF;
 * - `'...'` keeps everything literally;
 * - `"..."` keeps everything, and a backslash inside makes the next
 *   character literal (the backslash itself is dropped, whatever follows);
 * - outside quotes a backslash makes the next character literal;
 * - `#` at the start of a word starts a comment that runs to the end of the
 *   line; inside a word it is an ordinary character;
 * - quotes join with the text around them (`a"b c"d` is one word `ab cd`),
 *   and `""` on its own is an empty word.
 *
 * No variable expansion, globbing or operators: `$HOME` stays `$HOME`.
 */

const SPACE = new Set([' ', '\t', '\r', '\n']);

export class ShlexError extends Error {}

type State = 'start' | 'word' | 'escape' | 'dquote' | 'dquoteEscape' | 'squote' | 'comment';

export function shlexSplit(input: string): string[] {
  const words: string[] = [];
  let state: State = 'start';
  let word = '';
  let inWord = false;
  const chars = [...input];
  for (const c of chars) {
    switch (state) {
      case 'start':
        if (SPACE.has(c)) break;
        if (c === '#') {
          state = 'comment';
          break;
        }
        inWord = true;
        if (c === '"') state = 'dquote';
        else if (c === "'") state = 'squote';
        else if (c === '\\') state = 'escape';
        else {
          word += c;
          state = 'word';
        }
        break;
      case 'word':
        if (SPACE.has(c)) {
          words.push(word);
          word = '';
          inWord = false;
          state = 'start';
        } else if (c === '"') state = 'dquote';
        else if (c === "'") state = 'squote';
        else if (c === '\\') state = 'escape';
        else word += c;
        break;
      case 'escape':
        word += c;
        state = 'word';
        break;
      case 'dquote':
        if (c === '"') state = 'word';
        else if (c === '\\') state = 'dquoteEscape';
        else word += c;
        break;
      case 'dquoteEscape':
        word += c;
        state = 'dquote';
        break;
      case 'squote':
        if (c === "'") state = 'word';
        else word += c;
        break;
      case 'comment':
        if (c === '\n') state = 'start';
        break;
    }
  }
  switch (state) {
    case 'escape':
    case 'dquoteEscape':
      throw new ShlexError('EOF found after escape character');
    case 'dquote':
    case 'squote':
      throw new ShlexError('EOF found when expecting closing quote');
    default:
      if (inWord) words.push(word);
  }
  return words;
}
