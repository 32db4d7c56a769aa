#!/usr/bin/env bats
# The servers under valgrind, in the steady state: no allocation per request.
# The comparison of two runs is explained in tests/valgrind.bats (the
# header) and tests/valgrind_helpers.bash (heap_growth_ok); it is a file of
# its own so that prove runs it beside the rest of the valgrind tests.

load valgrind_helpers

# allocs_h2 N CMD [ARG]... -- PATH [h2load ARG]...: as allocs_for, with
# exactly N requests from h2load over 4 h2c connections, 10 streams in
# flight on each; every answer must be a 2xx.
allocs_h2() {
	local n=$1 cmd=() path out
	shift
	while [ "$1" != -- ]; do cmd+=("$1"); shift; done
	shift
	path=$1
	shift
	vg_start "run$n" "${cmd[@]}" >&2 || { kill_server "$SERVER_PID"; return 1; }
	out=$(h2load -t1 -c4 -m10 -n "$n" "$@" "http://127.0.0.1:$SERVER_PORT$path" 2>&1)
	if ! grep -q "^status codes: $n 2xx" <<<"$out"; then
		echo "h2load: want $n answers 2xx, got: $out" >&2
		kill_server "$SERVER_PID"
		return 1
	fi
	vg_stop || return 1
	echo "$VG_ALLOCS"
}

@test "valgrind: dsys-serve allocates nothing per keep-alive /hello request" {
	local a1 a2
	a1=$(allocs_for "$N1" "${serve_cmd[@]}" -- http://127.0.0.1:PORT/hello)
	a2=$(allocs_for "$((N1 + EXTRA))" "${serve_cmd[@]}" -- http://127.0.0.1:PORT/hello)
	heap_growth_ok "$a1" "$a2"
}

@test "valgrind: dsys-serve allocates nothing per 64 KiB --route answer (a bigger buffer than a connection keeps)" {
	local a1 a2 doc=$BATS_TEST_TMPDIR/big.json
	head -c 65536 /dev/zero | tr '\0' x >"$doc"
	a1=$(allocs_for "$N1" "${serve_cmd[@]}" --route "GET /big=@$doc" -- http://127.0.0.1:PORT/big)
	a2=$(allocs_for "$((N1 + EXTRA))" "${serve_cmd[@]}" --route "GET /big=@$doc" -- http://127.0.0.1:PORT/big)
	heap_growth_ok "$a1" "$a2"
}

@test "valgrind: dsys-serve allocates nothing per 16-deep pipelined /hello request" {
	local a1 a2
	a1=$(allocs_for "$N1" "${serve_cmd[@]}" -- http://127.0.0.1:PORT/hello -P 16)
	a2=$(allocs_for "$((N1 + EXTRA))" "${serve_cmd[@]}" -- http://127.0.0.1:PORT/hello -P 16)
	heap_growth_ok "$a1" "$a2"
}

@test "valgrind: dsys-counter serve on mem: allocates nothing per keep-alive POST /incr" {
	local a1 a2
	a1=$(allocs_for "$N1" "${counter_cmd[@]}" --store mem: -- http://127.0.0.1:PORT/incr "${incr_args[@]}")
	a2=$(allocs_for "$((N1 + EXTRA))" "${counter_cmd[@]}" --store mem: -- http://127.0.0.1:PORT/incr "${incr_args[@]}")
	heap_growth_ok "$a1" "$a2"
}

@test "valgrind: dsys-counter serve on mem: allocates nothing per 16-deep pipelined POST /incr" {
	local a1 a2
	a1=$(allocs_for "$N1" "${counter_cmd[@]}" --store mem: -- http://127.0.0.1:PORT/incr "${incr_args[@]}" -P 16)
	a2=$(allocs_for "$((N1 + EXTRA))" "${counter_cmd[@]}" --store mem: -- http://127.0.0.1:PORT/incr "${incr_args[@]}" -P 16)
	heap_growth_ok "$a1" "$a2"
}

@test "valgrind: dsys-counter serve on mem: allocates nothing per POST /incr of a 3-item array" {
	local a1 a2 batch=(-m POST -b '[{"key":"a"},{"key":"b","by":2},{"key":"a","by":-1}]')
	a1=$(allocs_for "$N1" "${counter_cmd[@]}" --store mem: -- http://127.0.0.1:PORT/incr "${batch[@]}")
	a2=$(allocs_for "$((N1 + EXTRA))" "${counter_cmd[@]}" --store mem: -- http://127.0.0.1:PORT/incr "${batch[@]}")
	heap_growth_ok "$a1" "$a2"
}

@test "valgrind: dsys-serve allocates nothing per h2c /hello stream, nghttp2's own objects included" {
	local a1 a2
	a1=$(allocs_h2 "$N1" "${serve_cmd[@]}" -- /hello)
	a2=$(allocs_h2 "$((N1 + EXTRA))" "${serve_cmd[@]}" -- /hello)
	heap_growth_ok "$a1" "$a2"
}

@test "valgrind: dsys-counter serve on mem: allocates nothing per gRPC Incr call" {
	local a1 a2 msg="$BATS_TEST_TMPDIR/incr.grpc"
	printf '\0\0\0\0\4\n\2k0' >"$msg"   # IncrRequest{key:"k0"}, framed
	local args=(-d "$msg" -H 'content-type: application/grpc' -H 'te: trailers')
	a1=$(allocs_h2 "$N1" "${counter_cmd[@]}" --store mem: -- /dsys.counter.v1.Counter/Incr "${args[@]}")
	a2=$(allocs_h2 "$((N1 + EXTRA))" "${counter_cmd[@]}" --store mem: -- /dsys.counter.v1.Counter/Incr "${args[@]}")
	heap_growth_ok "$a1" "$a2"
}
