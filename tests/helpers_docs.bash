# The programs that exist now: every bin/dsys-* source, built.
cd "$BATS_TEST_DIRNAME/.." || exit 1
: "${DSYS_BIN:=$PWD/build/bin}"
DSYS_PROGRAMS=()
for src in bin/dsys-*; do
	[ -e "$src" ] || continue
	name=$(basename "$src")
	DSYS_PROGRAMS+=("${name%.c}")
done
