/**
 * Image references in the short form `docker images` and `docker save`
 * print: `busybox:latest`, `demo/web:1.0`, `registry.local:5000/app:2`.
 * Compose files and RepoTags spell the same image in several ways; matching
 * is done on this form.
 */
export function familiarRef(ref: string): string {
  let r = ref.trim();
  if (r.startsWith('docker.io/')) r = r.slice('docker.io/'.length);
  if (r.startsWith('index.docker.io/')) r = r.slice('index.docker.io/'.length);
  if (r.startsWith('library/') && r.split('/').length === 2) r = r.slice('library/'.length);
  if (r.includes('@')) return r;
  const lastSlash = r.lastIndexOf('/');
  const hasTag = r.slice(lastSlash + 1).includes(':');
  return hasTag ? r : `${r}:latest`;
}
