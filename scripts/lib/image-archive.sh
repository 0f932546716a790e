# Writes a one-layer `docker save` archive from a folder, the same bytes for the same folder:
# no timestamps, owners or order that vary between runs. Sourced by scripts/demo,
# scripts/package (its smoke run) and scripts/package-test.
#
# busybox_rootfs DIR [FILE CONTENT]...: a root file system with Debian's static busybox and the
#   applets a demo or smoke service needs, plus the given files.
# write_image_archive ROOTFS REF CMD_JSON OUT [ARCH]: the archive of ROOTFS as image REF, whose
#   command is CMD_JSON (e.g. '["sleep","3600"]'); ARCH defaults to this machine's (dpkg).

busybox_rootfs() {
  local dir="$1"; shift
  [ -x /bin/busybox ] || { echo "busybox_rootfs: /bin/busybox is missing (apt-get install busybox-static)" >&2; return 1; }
  rm -rf "$dir"
  mkdir -p "$dir/bin"
  cp /bin/busybox "$dir/bin/busybox"
  local applet
  for applet in sh httpd date sleep cat echo ls true; do ln -s busybox "$dir/bin/$applet"; done
  while [ $# -ge 2 ]; do
    mkdir -p "$(dirname "$dir/$1")"
    printf '%s\n' "$2" >"$dir/$1"
    shift 2
  done
}

write_image_archive() {
  local rootfs="$1" ref="$2" cmd="$3" out="$4" arch="${5:-$(dpkg --print-architecture)}"
  local work diff_id config config_id
  work="$(mktemp -d)"
  # A fixed order, time, owner and mode: the layer's digest depends on the files alone.
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode='go-w,a+rX' \
    -C "$rootfs" -cf "$work/layer.tar" . || { rm -rf "$work"; return 1; }
  diff_id="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
  mkdir "$work/out" "$work/out/$diff_id"
  mv "$work/layer.tar" "$work/out/$diff_id/layer.tar"
  config="$(printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["PATH=/bin"],"Cmd":%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$arch" "$cmd" "$diff_id")"
  config_id="$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)"
  printf '%s' "$config" >"$work/out/$config_id.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_id" "$ref" "$diff_id" >"$work/out/manifest.json"
  mkdir -p "$(dirname "$out")"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --mode='go-w,a+rX' -C "$work/out" -cf "$out.tmp" . \
    && mv "$out.tmp" "$out"
  local rc=$?
  rm -rf "$work"
  return $rc
}
