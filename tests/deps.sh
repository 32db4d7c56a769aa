#!/bin/sh
# deps.sh [--quiet] PACKAGE...: install the Debian packages named, only
# those missing.  Runs apt-get update first, since a fresh machine has no
# package lists; uses sudo when not root.  --quiet: print nothing when all
# are present.
#
# A package that cannot be installed is named in one line that says how to
# install it by hand, and the exit status is 2 (a usage-level failure: the
# machine is not set up), so make stops there and not at a compiler error.
quiet=0
[ "$1" = "--quiet" ] && { quiet=1; shift; }

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=
for p in "$@"; do
	case " $missing " in *" $p "*) continue ;; esac
	installed "$p" || missing="$missing $p"
done
missing=${missing# }
if [ -z "$missing" ]; then
	[ $quiet = 1 ] || echo "deps: all present"
	exit 0
fi

fail() {
	echo "deps: cannot install $1: $2; install it by hand: apt-get install $1" >&2
	exit 2
}
command -v apt-get >/dev/null 2>&1 || fail "$missing" "apt-get is not here (dsys is set up on Debian 12)"
sudo=
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || fail "$missing" "not root and no sudo"
	sudo=sudo
fi
echo "deps: installing $missing" >&2
export DEBIAN_FRONTEND=noninteractive
# apt's progress goes to a log, shown only when something fails.
log=$(mktemp) || exit 2
trap 'rm -f "$log"' EXIT
$sudo apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; fail "$missing" "apt-get update failed"; }
# A name with no candidate is named on its own, before apt-get refuses the lot.
for p in $missing; do
	apt-cache show "$p" >/dev/null 2>&1 || fail "$p" "no package of that name in the apt sources"
done
# Servers from Debian must not start as services: the tests start their own.
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
	$sudo chmod 755 /usr/sbin/policy-rc.d
	trap 'rm -f "$log"; $sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
if $sudo apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends $missing >"$log" 2>&1; then
	echo "deps: installed $missing" >&2
	exit 0
fi
cat "$log" >&2
# Which one failed?  Name the first that is still not installed.
for p in $missing; do
	installed "$p" || fail "$p" "apt-get install failed"
done
exit 0
