#!/usr/bin/env bats
# lib/ is arranged by layer (dsys(7), LAYOUT): tests/layers.sh enforces
# which folder may include which.  The tree as it is passes, and each kind
# of violation, planted in a copy, is named and fails the check.

load helpers

setup() {
	root="$BATS_TEST_DIRNAME/.."
	copy="$BATS_TEST_TMPDIR/tree"
	mkdir -p "$copy/tests"
	cp -r "$root/lib" "$copy/lib"
	cp "$root/tests/layers.sh" "$copy/tests/"
}

@test "layers: every include in lib/ goes to its own layer or one below" {
	run "$root/tests/layers.sh" "$root"
	assert_success
	assert_output ""
}

@test "layers: base including a higher layer is named and fails the check" {
	printf '#include "http/parse.h"\n' >>"$copy/lib/base/buf.c"
	run "$copy/tests/layers.sh" "$copy"
	assert_failure 1
	assert_output --partial 'lib/base/buf.c: includes "http/parse.h": lib/base/ may not include lib/http/'
}

@test "layers: lib/ including lib/cli is refused, as only programs may" {
	printf '#include "cli/cli.h"\n' >>"$copy/lib/store/url.c"
	run "$copy/tests/layers.sh" "$copy"
	assert_failure 1
	assert_output --partial 'lib/store/url.c: includes "cli/cli.h": only programs (bin/) include lib/cli'
}

@test "layers: an include without its folder, or of bin/, is refused" {
	printf '#include "buf.h"\n' >>"$copy/lib/io/uring.c"
	printf '#include "../../bin/dsys-counter/dsys-counter.h"\n' >>"$copy/lib/counter/mem.c"
	run "$copy/tests/layers.sh" "$copy"
	assert_failure 1
	assert_output --partial 'lib/io/uring.c: includes "buf.h" without its folder'
	assert_output --partial 'lib/counter/mem.c: includes "../../bin/dsys-counter/dsys-counter.h", which is not in lib/'
}

@test "layers: two layers of one rank may not include each other, and a new folder must be placed" {
	mkdir -p "$copy/lib/lock" "$copy/lib/newlayer"
	printf '#include "counter/counter.h"\n' >"$copy/lib/lock/lock.c"
	printf '#include "base/buf.h"\n' >"$copy/lib/newlayer/x.c"
	run "$copy/tests/layers.sh" "$copy"
	assert_failure 1
	assert_output --partial 'lib/lock/lock.c: includes "counter/counter.h": lib/lock/ may not include lib/counter/'
	assert_output --partial 'lib/newlayer/ is not a known layer'
}

@test "layers: a message header counts as its .proto's layer, and one with no .proto is refused" {
	printf 'syntax = "proto3";\nmessage M { int32 a = 1; }\n' >"$copy/lib/obs/m.proto"
	printf '#include "obs/m.pb-c.h"\n' >>"$copy/lib/http/route.c"
	run "$copy/tests/layers.sh" "$copy"
	assert_success
	printf '#include "obs/m.pb-c.h"\n' >>"$copy/lib/base/buf.c"
	printf '#include "http/none.pb-c.h"\n' >>"$copy/lib/store/url.c"
	run "$copy/tests/layers.sh" "$copy"
	assert_failure 1
	assert_output --partial 'lib/base/buf.c: includes "obs/m.pb-c.h": lib/base/ may not include lib/obs/'
	assert_output --partial 'lib/store/url.c: includes "http/none.pb-c.h", which is not in lib/'
}
