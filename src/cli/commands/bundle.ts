import { stat } from 'node:fs/promises';
import { sealingOpts, sealingOption } from '../sealing-inputs.js';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { AirlockError, usageError } from '../../errors/index.js';
import { COMPRESSIONS, type Compression } from '../../bundle/blob-collector.js';
import { baseBlobs, baseLabel, carriedBlobs, isReceiptBase, parseManifest, parseSignatures, sealedFiles, type EngineRecord, type Manifest } from '../../bundle/manifest.js';
import { checkSignature, openBundleFile, readBundle, readBundleHead, sha256Hex } from '../../bundle/reader.js';
import { journalPathIn, stateDirFrom } from '../../store/state-dir.js';
import { checkVersionPolicy } from '../../import/policy.js';
import { platformList } from '../../images/platform.js';
import type { Journal } from '../../journal/journal.js';
import { BundleRecords } from '../../journal/bundles.js';
import { signingKeyFile, trustStoreOption } from '../trust-inputs.js';
import { waitOption } from '../duration-option.js';
import { boolOpt, jsonOpt, stringOpt, type Command, str } from '../command.js';
import { engine, supportedEngine } from '../engine.js';
import { progress } from '../progress.js';
import { printable, printableText } from '../../units/printable.js';
import { shortDigest, table } from '../format.js';
import { formatBytes } from '../../units/bytes.js';
import { isPartsIndex } from '../../bundle/parts.js';
import { bundleSplitCommand, parseSplitSize, partsStatus, partsStatusLines, splitBuilt, splitJson, splitLines } from './bundle-split.js';
import { receiptCommand } from './receipt.js';

const trustOpt = { trust: stringOpt() };
const stateOpt = { state: stringOpt() };


/** What a delta carries and what it relies on the host to hold already; null for a full bundle. */
function deltaSummary(m: Manifest) {
  if (!m.base) return null;
  const carried = carriedBlobs(m);
  const left = baseBlobs(m);
  const sum = (list: { size: number }[]) => list.reduce((n, b) => n + b.size, 0);
  return {
    base: m.base,
    carried: { blobs: carried.length, bytes: sum(carried) },
    fromBase: { blobs: left.length, bytes: sum(left) },
  };
}

/** Which site keys the bundle is sealed to and which files are sealed (paths, never contents); null when none is. */
function sealedSummary(m: Manifest): { to: string[]; files: string[] } | null {
  if (!m.sealedTo) return null;
  return { to: m.sealedTo, files: sealedFiles(m).map((f) => f.label) };
}

function summaryLines(m: Manifest): string[] {
  const carried = carriedBlobs(m);
  const content = carried.reduce((n, b) => n + b.size, 0);
  const stored = carried.reduce((n, b) => n + (b.stored?.size ?? b.size), 0);
  const delta = deltaSummary(m);
  const lines = [
    `bundle    ${m.name} ${m.version}`,
    ...(m.description ? [`about     ${printable(m.description)}`] : []),
    `created   ${m.created}`,
    `expires   ${m.expires ?? 'never'}`,
    `content   ${formatBytes(content)} in ${carried.length} blobs (${formatBytes(stored)} as stored)`,
    ...(delta
      ? [
          `delta     ${isReceiptBase(delta.base) ? `against the ${baseLabel(delta.base)} (receipt ${shortDigest(delta.base.receipt.digest)})` : `of ${baseLabel(delta.base)} (manifest ${shortDigest(delta.base.manifestDigest)})`}: ` +
            `relies on ${delta.fromBase.blobs} blobs (${formatBytes(delta.fromBase.bytes)}) the host must hold already`,
        ]
      : []),
    ...(m.engine ? [`engine    ${engineLine(m.engine)}`] : []),
    ...(m.sealedTo ? [`sealed to ${m.sealedTo.join(', ')} (site key ids; ${sealedFiles(m).length} sealed files, marked (sealed) below)`] : []),
  ];
  const named = (f: { name?: string; path?: string; sealed?: true }) => `${f.name ?? f.path ?? ''}${f.sealed ? ' (sealed)' : ''}`;
  if (m.stacks.length > 0) {
    lines.push('', table([['STACK', 'FILES'], ...m.stacks.map((s) => [s.name, [...s.composeFiles, ...s.envFiles].map(named).join(', ')])]));
  }
  if (m.images.length > 0) {
    // A bundle built for several platforms: one row per variant, its platform named.
    const perPlatform = m.images.some((i) => i.platform !== undefined);
    const head = perPlatform ? ['IMAGE', 'PLATFORM', 'ID', 'LAYERS', 'SIZE'] : ['IMAGE', 'ID', 'LAYERS', 'SIZE'];
    const row = (i: Manifest['images'][number]) => [
      i.refs.join(', ') || '<untagged>',
      ...(perPlatform ? [i.platform ?? ''] : []),
      shortDigest(i.id),
      String(i.layers.length),
      formatBytes(i.layers.reduce((n, l) => n + l.size, 0)),
    ];
    lines.push('', table([head, ...m.images.map(row)]));
  }
  if (m.engine) {
    const files = m.engine.files;
    lines.push(
      '',
      m.engine.form === 'static'
        ? table([['ENGINE FILE', 'MODE', 'SIZE'], ...files.map((f) => [f.path, f.mode.toString(8).padStart(4, '0'), formatBytes(f.size)])])
        : table([['PACKAGE', 'VERSION', 'ARCH', 'FILE', 'SIZE'], ...files.map((f) => [printable(f.package?.name ?? ''), printable(f.package?.version ?? ''), printable(f.package?.architecture ?? ''), printable(f.path), formatBytes(f.size)])]),
    );
  }
  if (m.files.length > 0) {
    lines.push('', table([['FILE', 'MODE', 'SIZE'], ...m.files.map((f) => [named(f), f.mode.toString(8).padStart(4, '0'), formatBytes(f.size)])]));
  }
  return lines;
}

/** `28.5.2+dfsg4, static, linux/amd64, glibc 2.38 or newer`: what the engine is and what it needs of the host. */
function engineLine(e: EngineRecord): string {
  const libc = e.libc.kind === 'glibc' ? `glibc ${e.libc.minimum} or newer` : e.libc.kind === 'musl' ? 'musl' : e.libc.kind === 'static' ? 'no C library (static)' : 'C library from the distribution';
  const form = e.form === 'static' ? "static (Docker's binaries)" : `${e.form} packages (${e.files.length})`;
  return `${e.version}, ${form}, ${e.platform.os}/${e.platform.architecture}, ${libc}`;
}

/** Each image ref's platforms, for a bundle built per platform; null for one that records none (its configs say). */
function platformsByRef(m: Manifest): Record<string, string[]> | null {
  if (!m.images.some((i) => i.platform !== undefined)) return null;
  const out: Record<string, string[]> = {};
  for (const i of m.images) for (const ref of i.refs) out[ref] = [...(out[ref] ?? []), i.platform!].sort();
  return out;
}

/** The key id a signature entry names, if it is readable at all (inspect shows broken ones too). */
/** The key ids the signature records name, unchecked (for a refusal's report); null when they do not parse. */
function signerOf(bytes: Buffer | null): string | null {
  try {
    return bytes ? parseSignatures(bytes).map((r) => r.keyId).join(', ') : null;
  } catch {
    return null;
  }
}

/**
 * A receipt's signature is always checked: it comes from outside, through
 * any channel, and a receipt the site did not write would make the delta
 * useless there. (One base per delta: buildBundle refuses it with --since.)
 */
function receiptOptions(path: string | undefined, keyPath: string | undefined) {
  if (path === undefined) {
    if (keyPath !== undefined) throw usageError('--receipt-key checks the --since-receipt receipt: give --since-receipt FILE too');
    return undefined;
  }
  if (keyPath === undefined) {
    throw usageError("--since-receipt needs --receipt-key SITE.pub: a receipt is used only once it checks out against the site's public key", {
      hint: "the site makes its key with 'airlock key generate' and gives you the .pub file",
    });
  }
  return { path, keyPath };
}

/** The journal, read-only, when the state dir has one; verify uses it for the downgrade check. */
async function existingJournal(stateDir: string): Promise<Journal | undefined> {
  if (!existsSync(journalPathIn(stateDir))) return undefined;
  const { Journal } = await import('../../journal/journal.js');
  return Journal.open(stateDir, { readonly: true });
}

export const bundleCommands: Command[] = [
  {
    path: ['bundle', 'build'],
    summary: 'build and sign a bundle from bundle.yaml',
    usage: 'airlock bundle build -f bundle.yaml --key KEY -o OUTDIR [--seal-to SITE.recipient …] [--platform OS/ARCH,…] [--compress auto|gzip|zstd|none] [--since OLD [--trust DIR] | --since-receipt FILE --receipt-key SITE.pub] [--split SIZE] [--json]',
    details:
      'Writes OUTDIR/<name>-<version>.airlock. Images come from the docker save / OCI tarballs named\n' +
      'in bundle.yaml, else from the local Docker Engine (DOCKER_HOST or /var/run/docker.sock).\n' +
      'With SOURCE_DATE_EPOCH set, the same inputs and key give the same bytes (sealed files excepted).\n' +
      '--seal-to SITE.recipient (repeatable; replaces the definition\'s seal_to:) seals every file behind a\n' +
      "stack's secrets: and every file and env file marked sensitive: true to each site recipient, with age\n" +
      '(docs/sealed-secrets.md). Such a bundle is v2 (requires "sealed"); inspect lists the site key ids. Refused\n' +
      '(exit 3): a secret file: that no files: entry carries, one with a variable, a sensitive file with no\n' +
      'recipient. Secrets built without any recipient travel in clear: the build warns, and hosts that\n' +
      'require sealed secrets refuse the bundle.\n' +
      '--platform linux/amd64,linux/arm64 takes every image for each platform named (wins over the\n' +
      "definition's platforms: list): from multi-platform OCI archives or docker save archives, else from\n" +
      'the local engine (API 1.48+ exports a chosen platform). A platform missing for an image is an error\n' +
      'naming both. Such a bundle is v2 (requires "platforms"); each host loads the variant for its own\n' +
      'platform, and refuses the bundle (exit 13) if an image has none. Without it, one image per ref.\n' +
      '--compress auto (default) zstd-compresses only blobs that shrink by 10% or more; gzip and zstd\n' +
      'compress every blob. zstd bundles are smaller and decode faster, but they are v2, which\n' +
      'hosts on an airlock from before zstd cannot read; for those, use --compress gzip.\n' +
      '--since OLD builds a delta: it leaves out every blob the earlier bundle OLD names, and a host\n' +
      'imports it only if it holds those blobs already. OLD is the earlier .airlock file, or its\n' +
      "manifest as 'airlock bundle inspect OLD --manifest' prints it. --trust DIR also checks OLD's\n" +
      'signature (a bundle file only; by default its head must merely parse).\n' +
      '--split SIZE (100M, 1G, 1536K or bytes, at least 1M) writes <name>-<version>.airlock.part-0001, … of\n' +
      'SIZE bytes and the signed index <name>-<version>.airlock.parts instead of the one file.\n' +
      "--since-receipt FILE builds a delta against what a site holds: FILE is the site's receipt\n" +
      "('airlock bundle receipt' there), and every blob it lists is left out. Its signature is always\n" +
      "checked, against the site's public key --receipt-key SITE.pub. Not together with --since.\n" +
      "engine: in bundle.yaml carries a Docker Engine: Docker's static archive (static: docker-X.Y.Z.tgz,\n" +
      'exactly its eight binaries under docker/) or a set of .deb packages (packages: a folder or a list).\n' +
      'Such a bundle is v2 (requires "engine"); inspect shows its version, form, platform and C library\n' +
      '(docs/bundle-format.md, section 13).',
    options: {
      file: stringOpt('f'),
      key: stringOpt(),
      out: stringOpt('o'),
      compress: stringOpt(),
      since: stringOpt(),
      split: stringOpt(),
      'since-receipt': stringOpt(),
      'receipt-key': stringOpt(),
      platform: stringOpt(),
      'seal-to': { type: 'string' as const, multiple: true },
      ...trustOpt,
      ...jsonOpt,
    },
    args: { min: 0, max: 0 },
    async run({ values, json, out }) {
      const file = str(values.file) ?? 'bundle.yaml';
      const keyPath = str(values.key);
      if (!keyPath) throw usageError('--key KEY is required: bundles are always signed');
      const compression = (str(values.compress) ?? 'auto') as Compression;
      if (!COMPRESSIONS.includes(compression)) throw usageError(`--compress must be ${COMPRESSIONS.join(', ')}, not "${compression}"`);
      const since = str(values.since);
      const trustDir = str(values.trust);
      const splitText = str(values.split);
      const partSize = splitText === undefined ? undefined : parseSplitSize(splitText);
      if (trustDir !== undefined && since === undefined) throw usageError('--trust on bundle build checks the --since bundle: give --since OLD too');
      const sinceReceipt = receiptOptions(str(values['since-receipt']), str(values['receipt-key']));
      const platformText = str(values.platform);
      const platforms =
        platformText === undefined
          ? undefined
          : platformList(platformText.split(','), (_, why) => {
              throw usageError(`--platform: ${why}`, { hint: 'give a comma-separated list, e.g. --platform linux/amd64,linux/arm64' });
            });
      const sealTo = Array.isArray(values['seal-to']) ? values['seal-to'].map((p) => resolve(p)) : undefined;
      const sinceTrust = trustDir === undefined ? undefined : await trustStoreOption({ trust: trustDir, state: values.state });
      const key = await signingKeyFile(keyPath);
      const docker = await engine();
      const { buildBundle } = await import('../../bundle/builder.js');
      const r = await buildBundle({
        definitionFile: file,
        key,
        outDir: str(values.out) ?? '.',
        compression,
        docker,
        ...(since !== undefined ? { since } : {}),
        ...(sinceTrust ? { sinceTrust } : {}),
        ...(sinceReceipt ? { sinceReceipt } : {}),
        ...(platforms ? { platforms } : {}),
        ...(sealTo ? { sealTo } : {}),
        onWarning: (message) => process.stderr.write(`${printableText(`warning: ${message}`)}\n`),
      }).finally(() => docker.close());
      const delta = deltaSummary(r.manifest);
      const split = partSize === undefined ? undefined : await splitBuilt(r.path, partSize, key);
      if (json) {
        out(
          JSON.stringify({
            path: r.path,
            bytes: r.bytes,
            keyId: r.keyId,
            name: r.manifest.name,
            version: r.manifest.version,
            blobs: r.manifest.blobs.length,
            ...(platformsByRef(r.manifest) ? { platforms: platformsByRef(r.manifest) } : {}),
            ...(r.manifest.sealedTo ? { sealed: sealedSummary(r.manifest) } : {}),
            ...(r.manifest.engine ? { engine: r.manifest.engine } : {}),
            ...(delta && r.base ? { delta: { ...delta, baseRead: r.base.source, baseSignatureChecked: r.base.signatureChecked } } : {}),
            ...(split ? { path: split.indexPath, split: splitJson(split) } : {}),
          }),
        );
      } else if (split) out([...splitLines(split), '', ...summaryLines(r.manifest)].join('\n'));
      else out([`wrote ${r.path} (${formatBytes(r.bytes)}), signed by ${r.keyId}`, '', ...summaryLines(r.manifest)].join('\n'));
    },
  },
  receiptCommand,
  {
    path: ['bundle', 'inspect'],
    summary: "show a bundle's manifest and whether its signature checks out",
    usage: 'airlock bundle inspect FILE [--trust DIR] [--json | --manifest]',
    details:
      'Reads only the manifest and signature; use verify to check every byte.\n' +
      '--manifest prints the signed manifest bytes as they are (plus a newline): keep that file to build\n' +
      "deltas later with 'bundle build --since FILE' without keeping the bundle.",
    options: { ...trustOpt, ...jsonOpt, manifest: boolOpt() },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out, outSigned }) {
      const file = positionals[0]!;
      // A split bundle: which parts are there; its manifest only once all are.
      const parts = isPartsIndex(file) && values.manifest !== true ? await partsStatus(file, () => trustStoreOption(values)) : undefined;
      if (parts && !parts.complete) {
        out(json ? JSON.stringify({ file, parts }) : partsStatusLines(parts).join('\n'));
        return;
      }
      const head = await readBundleHead(await openBundleFile(file));
      const manifest = parseManifest(head.manifestBytes);
      if (values.manifest === true) {
        if (json) throw usageError('--manifest prints the manifest JSON itself: leave out --json');
        outSigned(head.manifestBytes.toString('utf8'));
        return;
      }
      let signature: { status: string; keyId: string | null; signers?: string[]; message?: string };
      try {
        const sig = checkSignature(head, await trustStoreOption(values));
        signature = { status: 'valid', keyId: sig.keyId, signers: sig.signers };
      } catch (e) {
        if (!(e instanceof AirlockError)) throw e;
        const keyId = signerOf(head.signatureBytes);
        signature = { status: e.reason, keyId, message: e.message };
      }
      const fileBytes = parts?.bytes ?? (await stat(file)).size;
      if (json) {
        out(
          JSON.stringify({
            file,
            bytes: fileBytes,
            manifestDigest: `sha256:${sha256Hex(head.manifestBytes)}`,
            signature,
            delta: deltaSummary(manifest),
            platforms: platformsByRef(manifest),
            sealed: sealedSummary(manifest),
            engine: manifest.engine ?? null,
            manifest,
            ...(parts ? { parts } : {}),
          }),
        );
        return;
      }
      // The key id of an untrusted signature is the signer's text: one line, escaped.
      const sigLine = signature.status === 'valid' ? `valid, key${signature.signers!.length > 1 ? 's' : ''} ${signature.signers!.join(', ')}` : `${signature.status}${signature.keyId ? `, key ${printable(signature.keyId)}` : ''}: ${printable(signature.message ?? '')}`;
      out([...(parts ? partsStatusLines(parts) : [`file      ${file} (${formatBytes(fileBytes)})`]), `signature ${sigLine}`, ...summaryLines(manifest)].join('\n'));
    },
  },
  {
    path: ['bundle', 'verify'],
    summary: 'check a bundle completely, without changing anything',
    usage: 'airlock bundle verify FILE [--trust DIR] [--state DIR] [--json]',
    details:
      'Exit codes: 0 valid; 10 signature (unsigned, unknown or revoked key, bad signature; with a root of trust,\nfewer signatures than the release role needs, a key of another role);\n' +
      '11 integrity (hash or size mismatch, truncated, missing, extra, duplicate or misordered entry);\n' +
      '12 unsafe entry (path traversal, links, devices, oversized, decompression bomb);\n' +
      '13 policy (expired, or older than a version this host imported or than the trust timestamp names);\n' +
      '21 trust (this host\'s trust metadata expired, incomplete or damaged; see docs/trust.md).',
    options: { ...trustOpt, ...stateOpt, ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const trust = await trustStoreOption(values);
      const journal = await existingJournal(stateDirFrom(str(values.state)));
      try {
        const v = await readBundle(await openBundleFile(positionals[0]!), {
          trust,
          beforePayload: (h) => {
            if (journal) checkVersionPolicy(h, new BundleRecords(journal), false);
          },
        });
        const m = v.manifest;
        if (json) out(JSON.stringify({ valid: true, name: m.name, version: m.version, keyId: v.keyId, signers: v.signers, manifestDigest: v.manifestDigest, blobs: m.blobs.length, payloadBytes: v.payloadBytes }));
        else out(`valid: ${m.name} ${m.version}, signed by ${v.signers.join(', ')}, ${carriedBlobs(m).length} blobs (${formatBytes(v.payloadBytes)}) verified`);
      } finally {
        journal?.close();
      }
    },
  },
  {
    path: ['bundle', 'import'],
    summary: "verify a bundle and store its blobs in this host's content store",
    usage: 'airlock bundle import FILE [--state DIR] [--trust DIR] [--allow-downgrade] [--no-load] [--wait 60s] [--identity PATH]… [--require-sealed | --allow-unsealed] [--json]',
    details:
      'Blobs go to STATE/blobs/sha256/<hex> (default state dir /var/lib/airlock, or AIRLOCK_STATE_DIR).\n' +
      "Then the bundle's images are loaded into the local Docker Engine (DOCKER_HOST or /var/run/docker.sock)\n" +
      'and checked by id; --no-load only stores. A refused bundle changes nothing but the journal,\n' +
      'which records the refusal and its reason. An import holds the apply lock; --wait is how long it waits\n' +
      'for another apply, import or rollback to finish (exit 16 after; docs/journal.md, "The apply lock").\n' +
      'Sealed secrets open with the site identities of --identity (else AIRLOCK_SITE_KEYS, else\n/etc/airlock/site-keys); a bundle sealed to none of them is refused (13, sealed-elsewhere). With\n--require-sealed (the default where the agent config says secrets.requireSealed), a secret in clear\nis refused (13, unsealed-secret); --allow-unsealed takes it. docs/sealed-secrets.md.',
    options: { ...stateOpt, ...trustOpt, 'allow-downgrade': boolOpt(), 'no-load': boolOpt(), wait: stringOpt(), ...sealingOpts, ...jsonOpt },
    args: { min: 1, max: 1 },
    async run({ positionals, values, json, out }) {
      const bar = progress();
      const docker = values['no-load'] === true ? undefined : await supportedEngine();
      try {
        const { importBundle } = await import('../../import/import-bundle.js');
        const r = await importBundle(positionals[0]!, {
          stateDir: stateDirFrom(str(values.state)),
          trust: await trustStoreOption(values),
          allowDowngrade: values['allow-downgrade'] === true,
          lockWaitMs: waitOption(values.wait),
          sealing: sealingOption(values),
          ...(docker ? { docker } : {}),
          onProgress: (p) => bar.update(p.phase, p.bytes, p.total),
        });
        bar.finish();
        if (json) {
          out(JSON.stringify(r));
          return;
        }
        out(`imported ${r.name} ${r.version}: ${r.newBlobs} new blobs (${formatBytes(r.newBytes)}), ${r.blobs - r.newBlobs} already stored${r.alreadyImported ? '; this bundle was imported before' : ''}`);
        if (r.images) {
          const { loaded, present, tagged, platform } = r.images;
          out(`images for ${platform}: ${loaded.length} loaded, ${tagged.length} tagged, ${present.length} already present${loaded.length ? ` (${loaded.join(', ')})` : ''}`);
        }
      } finally {
        bar.finish();
        await docker?.close();
      }
    },
  },
  bundleSplitCommand,
];
