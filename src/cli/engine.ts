import type { Docker, DockerClientOptions } from '../docker/index.js';

/** The Engine client, loaded only by commands that talk to the engine (it costs start-up time and memory). */
export async function engine(opts: DockerClientOptions = {}): Promise<Docker> {
  const { Docker } = await import('../docker/index.js');
  return new Docker(opts);
}
