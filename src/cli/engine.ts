import type { Docker, DockerClientOptions } from '../docker/index.js';

/**
 * The Engine client, loaded only by commands that talk to the engine (it
 * costs start-up time and memory). Nothing is asked of the engine until the
 * command's first call: `bundle build` needs one only for images it exports.
 */
export async function engine(opts: DockerClientOptions = {}): Promise<Docker> {
  const { Docker } = await import('../docker/index.js');
  return new Docker(opts);
}

/**
 * The Engine client for a command that works with the engine on this host.
 * An engine older than airlock supports is refused here, naming its release,
 * before the command reads or changes anything; one that cannot be reached
 * is left to the command, which retries (apply) or reports it (status).
 */
export async function supportedEngine(opts: DockerClientOptions = {}): Promise<Docker> {
  const docker = await engine(opts);
  const { isDockerError } = await import('../docker/index.js');
  try {
    // Negotiates once; the answer is kept for the command's own calls.
    await docker.client.apiVersion({ retry: false });
  } catch (e) {
    if (isDockerError(e, 'api-too-old')) {
      await docker.close();
      throw e;
    }
  }
  return docker;
}
