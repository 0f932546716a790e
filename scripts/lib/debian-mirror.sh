# debian_mirror SUITE: the Debian mirror this machine's apt uses for SUITE (deb822 or one-line
# sources), else deb.debian.org. Sourced by scripts/package-test and scripts/engines; roots
# of other suites (trixie, forky) come from the mirror apt uses for the machine's own suite.
debian_mirror() {
  local suite="$1" mirror
  mirror="$(
    { cat /etc/apt/sources.list.d/*.sources 2>/dev/null; echo; } | awk -v s="$suite" '
      /^$/ { if (uri != "" && suites ~ ("(^| )" s "( |$)") && types ~ /(^| )deb( |$)/) { print uri; exit } uri = ""; suites = ""; types = ""; next }
      /^URIs:/ { uri = $2 } /^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 } /^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }'
  )"
  [ -n "$mirror" ] || mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk -v s="$suite" '$1 == "deb" && $3 == s && $2 !~ /security/ { print $2; exit }')"
  echo "${mirror:-http://deb.debian.org/debian}"
}
