import { usageError } from '../../errors/index.js';
import { stateDirFrom } from '../../store/state-dir.js';
import { DEFAULT_KEEP, prune, type PruneReport } from '../../retention/index.js';
import { boolOpt, jsonOpt, stringOpt, type Command, str } from '../command.js';
import { supportedEngine } from '../engine.js';
import { waitOption } from '../duration-option.js';
import { shortDigest, table } from '../format.js';
import { formatBytes } from '../../units/bytes.js';


function keepOf(v: unknown): number {
  if (v === undefined) return DEFAULT_KEEP;
  const s = String(v);
  if (!/^\d+$/.test(s) || Number(s) < 1) {
    throw usageError(`--keep ${s}: give a whole number of deployments, 1 or more (the one running is always kept)`, { hint: "see 'airlock prune --help'" });
  }
  return Number(s);
}

const REASON: Record<string, string> = {
  current: 'running',
  recent: 'recent',
  restored: 'restored by a kept rollback',
  'rollback-default': 'where a bare rollback goes',
  unfinished: 'unfinished apply',
};

/** The human form of a prune report. */
export function pruneLines(r: PruneReport): string[] {
  const lines: string[] = [];
  const verb = r.dryRun ? 'would remove' : 'removed';
  if (r.dryRun) lines.push('dry run: nothing was changed');
  const stacks = new Map<string, string[]>();
  for (const d of r.kept.deployments) stacks.set(d.stack, [...(stacks.get(d.stack) ?? []), `#${d.id}${d.bundle ? ` ${d.bundle}` : ''} (${REASON[d.reason] ?? d.reason})`]);
  lines.push(`kept (the last ${r.keep} deployment${r.keep === 1 ? '' : 's'} of each stack, and pending bundles):`);
  for (const [stack, ds] of stacks) lines.push(`  stack ${stack}: ${ds.join(', ')}`);
  const pending = r.kept.bundles.filter((b) => b.reason === 'pending');
  if (pending.length > 0) lines.push(`  pending bundles: ${pending.map((b) => `${b.name} ${b.version}`).join(', ')}`);
  if (stacks.size === 0 && pending.length === 0) lines.push('  nothing: no deployment and no pending bundle');
  if (r.blobs.length === 0 && r.images.length === 0 && r.bundles.length === 0) {
    lines.push('nothing to prune');
  } else {
    if (r.bundles.length > 0) lines.push(`${verb} the stored blobs of ${r.bundles.map((b) => `${b.name} ${b.version}`).join(', ')} (journal rows kept as history)`);
    if (r.blobs.length > 0) {
      lines.push('', table([['BLOB', 'KIND', 'SIZE'], ...r.blobs.map((b) => [shortDigest(b.digest), b.kind, formatBytes(b.size)])]));
    }
    if (r.images.length > 0) {
      lines.push('', table([['IMAGE', 'REFS', 'SIZE'], ...r.images.map((i) => [shortDigest(i.id), i.refs.join(', ') || '<untagged>', formatBytes(i.size)])]));
    }
  }
  if (r.skipped.length > 0) {
    lines.push('', 'left alone:');
    for (const s of r.skipped) lines.push(`  ${s.what} ${shortDigest(s.id)}: ${s.reason}`);
  }
  const freed = `${formatBytes(r.bytes.blobs)} from the content store (${r.blobs.length} blobs), ${r.dryRun ? 'about ' : ''}${formatBytes(r.bytes.images)} from the engine (${r.images.length} images)`;
  lines.push('', `${r.dryRun ? 'would free' : 'freed'} ${formatBytes(r.bytes.total)}: ${freed}${r.event !== null ? `; journal event #${r.event}` : ''}`);
  return lines;
}

export const pruneCommands: Command[] = [
  {
    path: ['prune'],
    summary: 'drop blobs, images and stored bundles that no kept deployment needs, to free disk',
    usage: 'airlock prune [--keep K] [--dry-run] [--state DIR] [--wait 60s] [--json]',
    details:
      'Kept, for each stack: the deployment it runs now and the ones before it, until K distinct\n' +
      'deployments are kept (default 3; a rollback counts as the deployment it restored), and with\n' +
      "K >= 2 the release a bare 'airlock rollback STACK' goes back to. Kept too: unfinished applies\n" +
      'and pending bundles: never applied successfully, and newer than any release of their name that\n' +
      "committed (an older one is superseded, applied or not: 'bundle apply' would refuse it as a\n" +
      "downgrade; 'airlock status' lists the same pending bundles). A kept deployment keeps its bundle's blobs, the images its\n" +
      'services were pinned to, the blobs to load them again, and its secret and config data. The rest\n' +
      'goes: blob files in the content store, and images airlock loaded (never others; an image in use\n' +
      'by a container other than a stopped swarm task is left alone). Rollback to any kept deployment\n' +
      'stays possible offline; an older one needs its bundle imported again. Bundle rows stay in the\n' +
      'journal as history. Takes the apply lock; journals a prune event with counts and bytes freed.\n' +
      '--dry-run lists what would go, with sizes, and changes nothing.',
    options: { keep: stringOpt(), 'dry-run': boolOpt(), state: stringOpt(), wait: stringOpt(), ...jsonOpt },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const keep = keepOf(values.keep);
      const lockWaitMs = waitOption(values.wait);
      const docker = await supportedEngine({ retry: false });
      try {
        const report = await prune({
          stateDir: stateDirFrom(str(values.state)),
          keep,
          dryRun: values['dry-run'] === true,
          docker,
          lockWaitMs,
        });
        out(json ? JSON.stringify(report) : pruneLines(report).join('\n'));
      } finally {
        await docker.close();
      }
    },
  },
];
