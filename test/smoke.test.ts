import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AirlockError } from '../src/errors/index.js';
test('errors carry exit codes', () => {
  assert.equal(new AirlockError('integrity', 'x').exitCode, 11);
});
