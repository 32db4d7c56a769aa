#!/usr/bin/env bats
# Documentation every program owes: a man page that renders cleanly and
# names every option, completions for bash and zsh, --help and --version.

load helpers_docs

@test "docs: every man page is mandoc-lint clean at warning level" {
	for page in man/man1/*.1 man/man7/*.7; do
		run mandoc -T lint -W warning "$page"
		[ "$status" -eq 0 ] || { echo "$page: $output"; false; }
	done
}

@test "docs: every man page renders with man -l without warnings" {
	for page in man/man1/*.1 man/man7/*.7; do
		out=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null)
		[ -z "$out" ] || { echo "$page: $out"; false; }
	done
}

@test "docs: every program has a man page, bash and zsh completions" {
	for p in "${DSYS_PROGRAMS[@]}"; do
		[ -f "man/man1/$p.1" ] || { echo "no man/man1/$p.1"; false; }
		[ -f "completions/bash/$p" ] || { echo "no completions/bash/$p"; false; }
		[ -f "completions/zsh/_$p" ] || { echo "no completions/zsh/_$p"; false; }
	done
	[ "${#DSYS_PROGRAMS[@]}" -ge 1 ]
}

@test "docs: every option a program lists appears in its man page" {
	for p in "${DSYS_PROGRAMS[@]}"; do
		opts=$("$DSYS_BIN/$p" --list-options)
		[ -n "$opts" ]
		for o in $opts; do
			# mdoc writes --name as "Fl -name"
			grep -qE "Fl -${o#--}( |$)" "man/man1/$p.1" ||
				{ echo "$p: $o is not in man/man1/$p.1"; false; }
		done
	done
}

@test "docs: every program answers --help and --version with exit 0" {
	for p in "${DSYS_PROGRAMS[@]}"; do
		run "$DSYS_BIN/$p" --help
		[ "$status" -eq 0 ] && [[ "$output" == *usage:* ]] || { echo "$p --help: $output"; false; }
		run "$DSYS_BIN/$p" --version
		[ "$status" -eq 0 ] && [[ "$output" == "$p "* ]] || { echo "$p --version: $output"; false; }
	done
}

@test "docs: an unknown flag is a usage error, exit 2, on every program" {
	for p in "${DSYS_PROGRAMS[@]}"; do
		run "$DSYS_BIN/$p" --no-such-flag
		[ "$status" -eq 2 ] || { echo "$p: status $status"; false; }
	done
}

@test "docs: the README names every program and the test command" {
	grep -q 'make test' README.md
	for p in "${DSYS_PROGRAMS[@]}"; do
		grep -q "\`$p\`" README.md || { echo "README lacks $p"; false; }
	done
}
