import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { readJoinToken } from '../../src/agent/swarm-boot.js';
import { AirlockError } from '../../src/errors/index.js';
import { tempDir } from '../helpers/fixtures.js';

const TOKEN = 'SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx';

test('the join token is read only from a file nobody else may read, and is never in an error', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.after(cleanup);
  const file = join(dir, 'token');
  await writeFile(file, `${TOKEN}\n`, { mode: 0o600 });
  assert.equal(await readJoinToken(file), TOKEN);

  await chmod(file, 0o644);
  const open = await readJoinToken(file).catch((e: unknown) => e);
  assert.ok(open instanceof AirlockError);
  assert.equal(open.reason, 'token-file-mode');
  assert.match(open.message, /readable by others \(mode 644\)/);
  assert.equal(open.hint, `chmod 600 ${file}`);
  assert.doesNotMatch(JSON.stringify(open.toJSON()), /SWMTKN/);

  await writeFile(file, 'not a token', { mode: 0o600 });
  await chmod(file, 0o600);
  const bad = await readJoinToken(file).catch((e: unknown) => e);
  assert.ok(bad instanceof AirlockError && bad.reason === 'bad-join-token');

  const missing = await readJoinToken(join(dir, 'nope')).catch((e: unknown) => e);
  assert.ok(missing instanceof AirlockError && missing.reason === 'no-join-token' && missing.exitCode === 4);
});
