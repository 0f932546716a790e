/**
 * The one-way FTP channel for real: vsftpd on loopback, a bundle uploaded
 * slowly with throttled curl, and the agent taking it from the server's
 * upload folder, or polling the server read-only.
 */
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { AgentProcess, writeAgentConfig } from '../helpers/agent.js';
import { buildRelease, deployments, startBench, type Bench } from '../helpers/apply.js';
import { ftpCommands, slowUpload, startVsftpd, vsftpdSkipReason, type Vsftpd } from '../helpers/vsftpd.js';

const skip = vsftpdSkipReason();
let bench: Bench;
let ftp: Vsftpd;
let bundle: string;

before(async () => {
  if (skip) return;
  bench = await startBench('airlock-agent-ftp-');
  ftp = await startVsftpd(bench.dir);
  // About 3 MiB: at 1 MiB/s the upload takes about 3 s, longer than any stability wait below.
  bundle = await buildRelease(bench, { version: '1.0.0', stack: 'ftpapp', repo: 'ftpapp', bulkBytes: 3 << 20 });
});
after(async () => {
  await ftp?.stop();
  await bench?.close();
});

const RATE = 1 << 20;

test('a bundle uploaded slowly into the FTP upload folder is taken only once the upload is complete', { skip }, async () => {
  const layout = await writeAgentConfig(join(bench.dir, 'a-folder'), bench.signer.trustDir, {
    inbox: { poll: '*/1 * * * * *', complete: { mode: 'stable', stableFor: '2s' }, sources: [{ type: 'folder', path: ftp.uploadDir }] },
  });
  const agent = new AgentProcess(layout.config, { DOCKER_HOST: bench.daemon.dockerHost });
  try {
    await agent.waitFor(/msg="agent started"/);
    const upload = slowUpload(bundle, `${ftp.url}folder.airlock`, RATE);
    // The partial file is there and growing while curl runs.
    await agent.waitFor(/msg="waiting for the file to stop changing" .*file=folder\.airlock/, 30_000);
    await upload.done;
    assert.deepEqual(agent.lines(/msg="importing bundle"/), [], 'imported before the upload completed');
    await agent.waitFor(/msg="stack deployed" .*stack=ftpapp/, 120_000);
    assert.deepEqual(await readdir(join(layout.inbox, 'done')), ['folder.airlock']);
    assert.equal((await stat(join(layout.inbox, 'done', 'folder.airlock'))).size, (await stat(bundle)).size);
    assert.equal(deployments(layout.state).at(-1)?.status, 'committed');
  } finally {
    await agent.stop();
  }
});

test('an FTP source is polled read-only: a slow upload is fetched after it completes, imported and applied', { skip }, async () => {
  const layout = await writeAgentConfig(join(bench.dir, 'a-ftp'), bench.signer.trustDir, {
    inbox: { poll: '*/1 * * * * *', sources: [{ type: 'ftp', name: 'drop', url: ftp.url, timeout: '10s' }] },
  });
  const before = (await ftpCommands(ftp.logFile)).length;
  const upload = slowUpload(bundle, `${ftp.url}polled.airlock`, RATE);
  const agent = new AgentProcess(layout.config, { DOCKER_HOST: bench.daemon.dockerHost });
  try {
    await agent.waitFor(/msg="agent started"/);
    await upload.done;
    assert.deepEqual(agent.lines(/msg="importing bundle"/), [], 'fetched before the upload completed');
    await agent.waitFor(/msg="stack deployed" .*stack=ftpapp/, 120_000);
    const done = await readdir(join(layout.inbox, 'done'));
    assert.deepEqual(done, ['polled.airlock']);
    // Read-only: the only writes on the server are curl's own upload.
    const commands = (await ftpCommands(ftp.logFile)).slice(before);
    const writes = commands.filter((c) => /^(STOR|APPE|DELE|RNFR|RNTO|MKD|RMD|SITE)\b/i.test(c));
    assert.deepEqual(writes.map((c) => c.split(' ')[0]), ['STOR'], commands.join('\n'));
    assert.ok((await readdir(ftp.uploadDir)).includes(basename('polled.airlock')), 'the remote file is left in place');
  } finally {
    await agent.stop();
  }
  // Restarted, the agent remembers what it settled and takes nothing twice.
  const again = new AgentProcess(layout.config, { DOCKER_HOST: bench.daemon.dockerHost });
  try {
    await again.waitFor(/msg="agent started"/);
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(again.lines(/msg="importing bundle"/), []);
  } finally {
    await again.stop();
  }
});
