#!/bin/sh
# layers.sh [ROOT]: check that lib/ keeps its layers (dsys(7), DESIGN.md).
#
# Each folder of lib/ is a layer with a rank; a file may include headers of
# its own folder and of folders with a lower rank, written with their folder
# ("http/parse.h").  Nothing in lib/ includes bin/ or lib/cli/ (only
# programs do), and a folder missing from the table is an error, so a new
# layer is placed on purpose.  Prints one line per violation and exits 1,
# or prints nothing and exits 0.
root=${1:-$(dirname "$0")/..}
cd "$root" || exit 2
rank() {
	case $1 in
	base) echo 0 ;;
	io) echo 1 ;;
	obs) echo 2 ;;
	http) echo 3 ;;
	store) echo 4 ;;
	counter | lock | register) echo 5 ;;
	raft) echo 6 ;;
	trace) echo 7 ;;
	cli) echo 9 ;;
	*) echo "" ;;
	esac
}
bad=0
for f in lib/*/*.[ch]; do
	[ -e "$f" ] || continue
	layer=${f#lib/}; layer=${layer%%/*}
	mine=$(rank "$layer")
	if [ -z "$mine" ]; then
		echo "$f: lib/$layer/ is not a known layer (add it to tests/layers.sh and dsys(7))"
		bad=1
		continue
	fi
	# Quoted includes only: <system> headers are not ours.
	for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
		case $inc in
		*/*) ;;
		*) echo "$f: includes \"$inc\" without its folder"; bad=1; continue ;;
		esac
		to=${inc%%/*}
		# a message header protoc-c makes from lib/LAYER/NAME.proto
		case $inc in
		*.pb-c.h) [ -e "lib/${inc%.pb-c.h}.proto" ] && src=lib/${inc%.pb-c.h}.proto || src= ;;
		*) src=lib/$inc ;;
		esac
		if [ "$to" = "$layer" ]; then
			[ "$layer" = cli ] || [ -e "$src" ] || { echo "$f: includes \"$inc\", which is not in lib/"; bad=1; }
			continue
		fi
		theirs=$(rank "$to")
		if [ -z "$theirs" ] || [ ! -e "$src" ]; then
			echo "$f: includes \"$inc\", which is not in lib/"
			bad=1
		elif [ "$to" = cli ]; then
			echo "$f: includes \"$inc\": only programs (bin/) include lib/cli"
			bad=1
		elif [ "$theirs" -ge "$mine" ]; then
			echo "$f: includes \"$inc\": lib/$layer/ may not include lib/$to/ (a layer includes only layers below it)"
			bad=1
		fi
	done
done
exit $bad
