/** Image endpoints: what loading bundles into a host and exporting them needs. */
import type { Readable } from 'node:stream';
import type { BodySource, CallOptions, DockerClient } from './client.js';
import { type Filters, encodeFilters, pathName } from './query.js';
import { isNotFound } from './errors.js';
import { parseJsonMessages, type ProgressMessage } from './progress.js';
import type { ImageDeleteItem, ImageInspect, ImageSummary } from './types.js';

export interface LoadResult {
  /** `name:tag` refs the daemon reported as loaded. */
  tags: string[];
  /** `sha256:` ids of images loaded without a tag. */
  ids: string[];
}

export class ImagesApi {
  constructor(private readonly c: DockerClient) {}

  inspect(name: string, opts: CallOptions = {}): Promise<ImageInspect> {
    return this.c.json('GET', `/images/${pathName(name)}/json`, { ...opts, subject: name });
  }

  /** `undefined` when the daemon has no such image; other errors still throw. */
  async find(name: string, opts: CallOptions = {}): Promise<ImageInspect | undefined> {
    try {
      return await this.inspect(name, opts);
    } catch (e) {
      if (isNotFound(e)) return undefined;
      throw e;
    }
  }

  list(opts: CallOptions & { all?: boolean; digests?: boolean; filters?: Filters } = {}): Promise<ImageSummary[]> {
    const { all, digests, filters, ...call } = opts;
    return this.c.json('GET', '/images/json', {
      ...call,
      query: { all, digests, filters: encodeFilters(filters) },
    });
  }

  /**
   * Streams a `docker save`/OCI tar into the daemon and yields its progress.
   * The upload starts on the first iteration. Pass a factory
   * (`() => createReadStream(f)`) to make the call retryable while the daemon
   * is down; a plain stream can be sent only once.
   */
  async *load(tar: BodySource, opts: CallOptions = {}): AsyncGenerator<ProgressMessage, void, undefined> {
    const body = await this.c.stream('POST', '/images/load', {
      ...opts,
      body: tar,
      query: { quiet: false },
      headers: { 'content-type': 'application/x-tar' },
      // The daemon answers only after it has read the whole tar: size-bound, not time-bound.
      headersTimeoutMs: 0,
      bodyTimeoutMs: 0,
    });
    yield* parseJsonMessages(body, { context: 'POST /images/load' });
  }

  /** `load` run to completion, collecting what was loaded. */
  async loadAll(
    tar: BodySource,
    opts: CallOptions & { onProgress?: (m: ProgressMessage) => void } = {},
  ): Promise<LoadResult> {
    const { onProgress, ...call } = opts;
    const result: LoadResult = { tags: [], ids: [] };
    for await (const m of this.load(tar, call)) {
      onProgress?.(m);
      const line = m.stream?.trim();
      const tag = line?.match(/^Loaded image: (.+)$/)?.[1];
      const id = line?.match(/^Loaded image ID: (.+)$/)?.[1];
      if (tag) result.tags.push(tag);
      if (id) result.ids.push(id);
    }
    return result;
  }

  /**
   * A `docker save` tar of the named images (refs or ids), streamed. With
   * `platform` (API 1.48+), only that platform's variant of each.
   */
  export(names: string | readonly string[], opts: CallOptions & { platform?: { os: string; architecture: string; variant?: string } } = {}): Promise<Readable> {
    const { platform, ...call } = opts;
    const list = typeof names === 'string' ? [names] : names;
    return this.c.stream('GET', '/images/get', {
      ...call,
      query: { names: list, platform: platform && JSON.stringify(platform) },
      subject: list.join(', '),
      bodyTimeoutMs: 0,
    });
  }

  /** Untags `name`, and deletes the image when that was its last reference. */
  async delete(name: string, opts: CallOptions & { force?: boolean; noprune?: boolean } = {}): Promise<ImageDeleteItem[]> {
    const { force, noprune, ...call } = opts;
    return (
      (await this.c.json<ImageDeleteItem[] | undefined>('DELETE', `/images/${pathName(name)}`, {
        ...call,
        query: { force, noprune },
        subject: name,
      })) ?? []
    );
  }

  tag(name: string, repo: string, tag: string, opts: CallOptions = {}): Promise<void> {
    return this.c.send('POST', `/images/${pathName(name)}/tag`, {
      ...opts,
      query: { repo, tag },
      subject: name,
      idempotent: true,
    });
  }
}
