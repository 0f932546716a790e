import { ExitCode } from '../errors/index.js';

/**
 * When the reader of airlock's output goes away (`airlock history --json |
 * head -3`, a log pipe that closes), airlock ends at once and quietly with
 * 141, the status of a Unix tool that SIGPIPE killed. Node ignores SIGPIPE,
 * so such a write fails with EPIPE instead, an 'error' on the stream that,
 * unhandled, would print a stack trace and exit 1; going on would only
 * write more into the void. Ending mid-apply is what a kill does, and the
 * journal is built for that: the next apply, rollback or recover (or the
 * agent's next start) finishes the deployment in hand.
 */
export function endWhenOutputCloses(streams: NodeJS.WriteStream[] = [process.stdout, process.stderr]): void {
  for (const stream of streams) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(ExitCode.outputClosed);
      // Any other failure to write is not ours to hide.
      throw e;
    });
  }
}
