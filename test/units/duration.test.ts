import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DurationError, parseDuration } from '../../src/units/duration.js';

// Values per Go's time.ParseDuration, which docker's compose loader uses.
const S = 1e9;
const cases: [string, number][] = [
  ['0', 0],
  ['10s', 10 * S],
  ['1m30s', 90 * S],
  ['1h', 3600 * S],
  ['1.5h', 5400 * S],
  ['300ms', 300_000_000],
  ['10us', 10_000],
  ['10µs', 10_000],
  ['10μs', 10_000],
  ['7ns', 7],
  ['.5s', 500_000_000],
  ['1h2m3s4ms', 3_723_004_000_000],
  ['-1s', -S],
  ['+2s', 2 * S],
];

for (const [text, ns] of cases) {
  test(`duration ${text} is ${ns} ns`, () => assert.equal(parseDuration(text), ns));
}

for (const bad of ['', '10', '1x', 's', '1.s.', '--1s', '1 s']) {
  test(`duration "${bad}" is refused`, () => assert.throws(() => parseDuration(bad), DurationError));
}
