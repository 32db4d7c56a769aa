#!/usr/bin/env bats
# The examples are part of the documentation: each one runs here.

setup() {
	cd "$BATS_TEST_DIRNAME/.."
	: "${DSYS_BIN:=$PWD/build/bin}"
	export DSYS_BIN
}

@test "examples: make demo's script runs end to end and prints JSON lines only on stdout" {
	run --separate-stderr bash examples/demo.sh
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	[ -n "$output" ]
	# every stdout line is one JSON object
	while IFS= read -r line; do
		echo "$line" | jq -e 'type == "object"' >/dev/null || { echo "not JSON: $line"; false; }
	done <<<"$output"
	[[ "$output" == *'"program":"dsys-serve"'* ]]
}

@test "examples: the demo leaves no server running" {
	run bash examples/demo.sh
	[ "$status" -eq 0 ]
	! pgrep -f "dsys-serve --listen 127.0.0.1:0 --threads 1" -u "$(id -u)" >/dev/null ||
		{ pgrep -af dsys-serve; false; }
}
