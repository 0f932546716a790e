#!/bin/sh
# airlock: runs the bundled CLI with the Node.js runtime the package carries. Installed as
# /usr/bin/airlock; from an unpacked tarball, its usr/bin/airlock works in place as well.
lib="$(readlink -f "$(dirname "$(readlink -f "$0")")/../lib/airlock")"
exec "$lib/node" "$lib/airlock.js" "$@"
