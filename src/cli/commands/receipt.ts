import { hostname } from 'node:os';
import { usageError } from '../../errors/index.js';
import { contentStoreOf, stateDirFrom } from '../../store/state-dir.js';
import { writeWhole } from '../../store/durable.js';
import { stringOpt, jsonOpt, type Command, str } from '../command.js';
import { formatBytes } from '../../units/bytes.js';
import type { Receipt } from '../../bundle/receipt.js';


export const receiptCommand: Command = {
  path: ['bundle', 'receipt'],
  summary: 'write a signed receipt of the bundles and blobs this host holds, for deltas against it',
  usage: 'airlock bundle receipt --key SITEKEY [--state DIR] [-o FILE|-] [--site NAME] [--json]',
  details:
    'Lists the bundles this host imported (and has not pruned) and the blobs its content store holds,\n' +
    'signed with the site key SITEKEY (make it once with airlock key generate; give the vendor its .pub).\n' +
    'Send the file to the vendor through any channel you have: airlock never sends it. The vendor then\n' +
    "builds deltas against exactly what this host holds: 'bundle build --since-receipt FILE --receipt-key SITE.pub'.\n" +
    'Writes FILE (default ./SITE.receipt.json; - for stdout). --site NAME names the site (default: the\n' +
    'host name). Reads the journal read-only and changes nothing on the host. Exit 4 if STATE has no journal.',
  options: { key: stringOpt(), state: stringOpt(), out: stringOpt('o'), site: stringOpt(), ...jsonOpt },
  args: { min: 0, max: 0 },
  async run({ values, json, out, outSigned }) {
    const keyPath = str(values.key);
    if (!keyPath) throw usageError('--key SITEKEY is required: a receipt is always signed, with the site key the vendor checks it against');
    const { SITE_PATTERN, isoSeconds } = await import('../../bundle/manifest.js');
    const site = str(values.site) ?? hostname();
    if (!new RegExp(SITE_PATTERN).test(site)) {
      throw usageError(`"${site}" cannot name a site: use letters, digits, '.', '_' and '-', starting with a letter or digit`, {
        ...(values.site === undefined ? { hint: 'the host name does not fit: give --site NAME' } : {}),
      });
    }
    const target = str(values.out) ?? `${site}.receipt.json`;
    if (target === '-' && json) throw usageError('-o - writes the receipt itself to stdout: leave out --json');

    const { signingKeyFile } = await import('../trust-inputs.js');
    const key = await signingKeyFile(keyPath);
    const { Journal } = await import('../../journal/journal.js');
    const { readHoldings } = await import('../../import/holdings.js');
    const { RECEIPT_FORMAT_V1, compareBundles, signReceipt } = await import('../../bundle/receipt.js');
    const stateDir = stateDirFrom(str(values.state));
    const journal = Journal.open(stateDir, { readonly: true });
    let holdings;
    try {
      holdings = await readHoldings(journal, contentStoreOf(stateDir));
    } finally {
      journal.close();
    }
    const receipt: Receipt = {
      format: RECEIPT_FORMAT_V1,
      site,
      created: isoSeconds(new Date()),
      bundles: [...holdings.bundles].sort(compareBundles),
      blobs: holdings.blobs,
    };
    const signed = signReceipt(receipt, key);
    if (target === '-') {
      outSigned(signed.bytes.toString('utf8').trimEnd());
      return;
    }
    await writeWhole(target, signed.bytes);
    const blobBytes = receipt.blobs.reduce((n, b) => n + b.size, 0);
    if (json) {
      out(
        JSON.stringify({
          path: target,
          bytes: signed.bytes.length,
          site,
          created: receipt.created,
          digest: signed.ref.digest,
          keyId: signed.keyId,
          bundles: receipt.bundles.length,
          blobs: receipt.blobs.length,
          blobBytes,
          absent: holdings.absent,
        }),
      );
      return;
    }
    out(
      [
        `wrote ${target} (${formatBytes(signed.bytes.length)}), signed by ${signed.keyId}`,
        `site      ${site}`,
        `created   ${receipt.created}`,
        `bundles   ${receipt.bundles.length}${receipt.bundles.length ? ` (${receipt.bundles.map((b) => `${b.name} ${b.version}`).join(', ')})` : ''}`,
        `blobs     ${receipt.blobs.length} (${formatBytes(blobBytes)})`,
        `digest    ${signed.ref.digest}`,
        ...(holdings.absent > 0 ? [`left out  ${holdings.absent} blobs the journal names but the store lacks or holds at another size`] : []),
      ].join('\n'),
    );
  },
};
