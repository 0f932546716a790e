#!/bin/sh
# Installs airlock from this unpacked tarball, for hosts without dpkg: the same files as the
# .deb, then what its postinst does (the system user airlock in group docker, /var/lib/airlock).
#
# usage (as root):  ./install.sh           installs into /
#                   ./install.sh --remove  removes the program; keeps /etc/airlock and /var/lib/airlock
#
# An existing /etc/airlock/agent.yaml is kept; the shipped one is then written beside it as
# agent.yaml.new. The agent is not enabled: systemctl enable --now airlock-agent.
set -eu
here="$(dirname "$(readlink -f "$0")")"
cd "$here"

files() { find usr -type f -o -type l; }

if [ "${1:-}" = "--remove" ]; then
	if [ -d /run/systemd/system ]; then systemctl stop airlock-agent.service 2>/dev/null || true; fi
	files | while read -r f; do rm -f "/$f"; done
	rm -rf /usr/lib/airlock
	rmdir /usr/share/doc/airlock 2>/dev/null || true
	if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
	echo "airlock: removed; kept /etc/airlock and /var/lib/airlock (remove them by hand to purge)"
	exit 0
fi

[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }

# /usr/lib/airlock is the program alone: an older version's files go first.
restart=""
if [ -d /run/systemd/system ] && systemctl is-active --quiet airlock-agent.service; then
	systemctl stop airlock-agent.service
	restart=1
fi
rm -rf /usr/lib/airlock
files | while read -r f; do
	install -D -m "$(stat -c %a "$f")" "$f" "/$f"
done
install -d -m 0755 /etc/airlock /etc/airlock/trusted.d
install -d -m 0700 /etc/airlock/site-keys
if [ -e /etc/airlock/agent.yaml ]; then
	if ! cmp -s etc/airlock/agent.yaml /etc/airlock/agent.yaml; then
		install -m 0644 etc/airlock/agent.yaml /etc/airlock/agent.yaml.new
		echo "airlock: kept /etc/airlock/agent.yaml; the shipped default is /etc/airlock/agent.yaml.new"
	fi
else
	install -m 0644 etc/airlock/agent.yaml /etc/airlock/agent.yaml
fi

# The system user and the state folders: systemd's own tools where they exist.
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers airlock.conf
else
	getent group airlock >/dev/null || groupadd --system airlock
	getent passwd airlock >/dev/null || useradd --system --gid airlock --home-dir /var/lib/airlock \
		--no-create-home --shell /usr/sbin/nologin --comment "airlock offline bundle agent" airlock
	getent group docker >/dev/null || groupadd --system docker
	usermod --append --groups docker airlock
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create airlock.conf
else
	for d in /var/lib/airlock /var/lib/airlock/inbox; do
		[ -d "$d" ] || { mkdir -m 0750 "$d"; chown airlock:airlock "$d"; }
	done
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	if [ -n "$restart" ]; then systemctl start airlock-agent.service; fi
fi
echo "airlock $(/usr/bin/airlock --version): installed. Next: vendor keys in /etc/airlock/trusted.d/*.pub,"
echo "  settings in /etc/airlock/agent.yaml, then: systemctl enable --now airlock-agent"
