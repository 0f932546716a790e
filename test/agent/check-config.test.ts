/**
 * `agent --check-config` and the agent held to each other: for each config,
 * the check and the real agent process either both accept it (the agent logs
 * "agent started") or both refuse it with the same message and exit code.
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import YAML from 'yaml';
import { AgentProcess } from '../helpers/agent.js';
import { runCli, tempDir } from '../helpers/fixtures.js';

let work: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  work = await tempDir('airlock-check-config-');
  await writeFile(join(work.dir, 'a-file'), 'not a folder\n');
});
after(() => work.cleanup());

/** No engine is reached: the agent's first work (recover) fails and is logged, and it keeps running. */
const NO_ENGINE = { DOCKER_HOST: 'unix:///nonexistent/airlock-test/docker.sock' };

let n = 0;
async function configFile(over: (dir: string) => Record<string, unknown> | Promise<Record<string, unknown>>): Promise<string> {
  const dir = join(work.dir, `c${++n}`);
  await mkdir(join(dir, 'trust'), { recursive: true });
  const base = {
    stateDir: join(dir, 'state'),
    trustDir: join(dir, 'trust'),
    inbox: { dir: join(dir, 'inbox'), poll: '0 0 1 1 *' },
    retention: { schedule: null },
    drift: { schedule: null },
  };
  const file = join(dir, 'agent.yaml');
  await writeFile(file, YAML.stringify({ ...base, ...(await over(dir)) }));
  return file;
}

const ftp = (source: Record<string, unknown>) => (dir: string) => ({ inbox: { dir: join(dir, 'inbox'), poll: '0 0 1 1 *', sources: [{ type: 'ftp', ...source }] } });

/** Runs both; asserts they agree; returns the check's result. */
async function bothOn(file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const check = await runCli(['agent', '--check-config', '--config', file], NO_ENGINE);
  const agent = new AgentProcess(file, NO_ENGINE);
  try {
    const started = await Promise.race([agent.waitFor(/msg="agent started"/, 30_000).then(() => true, () => false), agent.exited.then(() => false)]);
    if (started) {
      assert.equal(check.code, 0, `the agent started with a config --check-config refused:\n${check.stderr}`);
    } else {
      const { code } = await agent.exited;
      assert.notEqual(check.code, 0, `--check-config accepted a config the agent refused at start (exit ${code}):\n${agent.log}`);
      assert.equal(code, check.code, `exit codes differ:\n--check-config: ${check.stderr}\nagent: ${agent.log}`);
      assert.equal(agent.log, check.stderr, 'the agent and --check-config say the same');
    }
  } finally {
    await agent.stop();
  }
  return check;
}

test('an FTP source without a name gets one from its host and port, and the agent starts with it', async () => {
  const r = await bothOn(await configFile(ftp({ url: 'ftp://127.0.0.1:42121/pub/' })));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /source {8}127\.0\.0\.1-42121: ftp:\/\/127\.0\.0\.1:42121\/pub\/ \(at least 64.0 KiB\/s\)/);
  const v6 = await bothOn(await configFile(ftp({ url: 'ftp://[::1]/pub/' })));
  assert.equal(v6.code, 0, v6.stderr);
  assert.match(v6.stdout, /source {8}[A-Za-z0-9][A-Za-z0-9._-]*: ftp:\/\/\[::1\]\/pub\//);
});

const refused: [string, (dir: string) => Record<string, unknown> | Promise<Record<string, unknown>>, RegExp][] = [
  ['an http:// URL', ftp({ url: 'http://127.0.0.1/pub/' }), /inbox\.sources\[0\]\.url: must match pattern "\^ftps\?:\/\/"/],
  ['a password in the URL', ftp({ url: 'ftp://bob:secret@127.0.0.1/pub/' }), /inbox\.sources\[0\]\.url: must not carry a password \(put the password in a file and name it in passwordFile\)/],
  ['tls on ftp://', ftp({ url: 'ftp://127.0.0.1/pub/', tls: { rejectUnauthorized: false } }), /inbox\.sources\[0\]\.tls: applies only to ftps:\/\/ URLs/],
  ['two users', ftp({ url: 'ftp://bob@127.0.0.1/pub/', user: 'alice' }), /inbox\.sources\[0\]\.user: "alice" differs from the user in url \("bob"\)/],
  ['a bad name', ftp({ name: '-drop', url: 'ftp://127.0.0.1/pub/' }), /inbox\.sources\[0\]\.name: must be a word of letters, digits/],
  ['a rate that is not one', ftp({ url: 'ftp://127.0.0.1/pub/', minRate: 'fast' }), /inbox\.sources\[0\]\.minRate: "fast" is not a rate in bytes per second/],
  [
    'two sources with the same default name',
    (dir) => ({ inbox: { dir: join(dir, 'inbox'), sources: [{ type: 'ftp', url: 'ftp://127.0.0.1:2121/a/' }, { type: 'ftp', url: 'ftp://127.0.0.1:2121/b/' }] } }),
    /inbox\.sources\[1\]\.name: two sources are named "127\.0\.0\.1-2121"/,
  ],
  ['a state dir that is a file', () => ({ stateDir: join(work.dir, 'a-file') }), /stateDir: .*a-file is not a folder/],
  ['an inbox under a file', () => ({ inbox: { dir: join(work.dir, 'a-file', 'inbox') } }), /inbox\.dir: .*a-file is not a folder \(on the way to /],
  ['a trust dir that is missing', (dir) => ({ trustDir: join(dir, 'no-such-trust') }), /agent\.yaml: trustDir: trust store not found: .*no-such-trust\n {2}hint: put the vendor public keys \(\*\.pub\) there, or point trustDir at/],
  ['a trust dir that is a file', () => ({ trustDir: join(work.dir, 'a-file') }), /agent\.yaml: trustDir: trust store .*a-file is a file, not a folder\n {2}hint: point trustDir at the folder of vendor keys/],
  [
    'a trust dir anyone may write (0777)',
    async (dir) => {
      await chmod(join(dir, 'trust'), 0o777);
      return {};
    },
    /agent\.yaml: trustDir: trust store .*\/trust is not safe to trust: .*\/trust is writable by group or others \(mode 777\)\n {2}hint: whoever can write there can make this host run anything.*chmod -R go-w /,
  ],
];

for (const [what, over, message] of refused) {
  test(`--check-config and the agent both refuse ${what}, with exit 3 and the same message`, async () => {
    const r = await bothOn(await configFile(over));
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, message);
  });
}
