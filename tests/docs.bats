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

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'

# render PAGE: the page as man(1) shows it, one paragraph per line (a wide
# MANWIDTH keeps words whole), in UTF-8 so quotes are the typographic ones
render() {
	LC_ALL=C.UTF-8 MANWIDTH=400 man -l "$1" 2>/dev/null
}

@test "docs: no page renders words as stray flags (\"--requests -are -done\")" {
	for page in man/man1/*.1 man/man7/*.7; do
		# a single-dash word of letters after a space or "(": words that a
		# macro line (.Fl, .Op) swallowed as flags; real short options are
		# one letter
		# (a cluster such as curl's -fsS is not all lower case)
		run grep -nE '(^|[ (])-[a-z]{2,}\b' <(render "$page")
		[ "$status" -eq 1 ] || { echo "$page: $output"; false; }
	done
}

@test "docs: no page renders nested or broken quotes" {
	for page in man/man1/*.1 man/man7/*.7; do
		# a quote opened inside an open one, doubled closing quotes, and
		# <Word> where a macro name (.In) began a quoted title
		run grep -nE '‘[^’]*‘|’’|“[^”]*“|””|<[A-Z][a-z]+>' <(render "$page")
		[ "$status" -eq 1 ] || { echo "$page: $output"; false; }
	done
}

@test "docs: a page quoting the write error quotes it whole (no word eaten by a macro)" {
	n=0
	for page in man/man1/*.1 man/man7/*.7; do
		text=$(render "$page")
		grep -q 'write error' <<<"$text" || continue
		n=$((n + 1))
		run grep -o '“write error: [^”]*”' <<<"$text"
		assert_output '“write error: No space left on device”'
	done
	[ "$n" -ge 2 ]
}

@test "docs: every page has the same footer, but for its date" {
	footers=$(for page in man/man1/*.1 man/man7/*.7; do
		render "$page" | grep -v '^ *$' | tail -1 | tr -s ' ' |
			sed -E 's/ [A-Z][a-z]+ [0-9]{1,2}, [0-9]{4} / DATE /'
	done | sort -u)
	[ -n "$footers" ]
	assert_equal "$(wc -l <<<"$footers")" 1
	[[ "$footers" == dsys* ]]
}

@test "docs: the README's every-fault example turns on every fault dsys-raft sim knows" {
	listed=$(sed -n 's/^dsys-raft sim .*--faults \([a-z,]*\).*/\1/p' README.md | head -1)
	[ -n "$listed" ]
	run "$DSYS_BIN/dsys-raft" sim --faults all --ticks 10
	assert_success
	assert_equal "$listed" "$(jq -r .faults <<<"$output")"
}

@test "docs: the README offers dsys-counter no store it does not take" {
	# the stores dsys-counter is said to run on, each one it accepts
	for url in mem: file:"$BATS_TEST_TMPDIR/c" redis://127.0.0.1:1 redis-cluster://127.0.0.1:1; do
		grep -qF "${url%%[/:]*}" README.md
	done
	run "$DSYS_BIN/dsys-counter" get k --store etcd://127.0.0.1:2379
	assert_failure 2
	# so the README never says it talks to etcd (the layout table's store/
	# row names lib/store/etcd, the client library, and dsys-lock's and
	# dsys-register's rows their own etcd:// stores: no claim about dsys-counter)
	run bash -c "grep -nE 'etcd(://|[ .,)]|$)' README.md | grep -v '^[0-9]*:| \`store/\` |' | grep -v '^[0-9]*:| \`dsys-lock\` |' | grep -v '^[0-9]*:| \`dsys-register\` |'"
	assert_failure 1
}

@test "docs: dsys-bench(1) says whether the dsys-register of its example exists yet" {
	run grep -c 'dsys-register' man/man1/dsys-bench.1
	[ "$output" -ge 1 ]
	if [ -e bin/dsys-register ] || [ -e bin/dsys-register.c ]; then
		! render man/man1/dsys-bench.1 | grep -q 'does not exist yet'
	else
		render man/man1/dsys-bench.1 | grep -q 'dsys-register(1) is planned and does not exist yet'
	fi
}

@test "docs: dsys-bench(1) EXIT STATUS names every status the program uses" {
	text=$(render man/man1/dsys-bench.1 | sed -n '/^EXIT STATUS/,/^EXAMPLES/p')
	for code in 0 1 2 3; do
		grep -qE "^ +$code +[A-Z]" <<<"$text" || { echo "no $code"; false; }
	done
	grep -q 'write error' <<<"$text"
	grep -q 'did not resolve' <<<"$text"
	grep -q 'No other status' <<<"$text"
}
