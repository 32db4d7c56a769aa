#!/usr/bin/env bats
# tests/deps.sh, the installer behind make deps: it installs only what is
# missing, and names a package it cannot install with the command to do it
# by hand, exiting 2.  apt-get, apt-cache, dpkg-query, id and sudo are
# stand-ins on PATH here: the real ones would change the machine.

load helpers
bats_require_minimum_version 1.5.0

setup() {
	shims="$BATS_TEST_TMPDIR/shims"
	mkdir -p "$shims"
	calls="$BATS_TEST_TMPDIR/calls"
	: >"$calls"
	# dpkg-query: installed are the packages listed in $INSTALLED.
	cat >"$shims/dpkg-query" <<'SH'
#!/bin/bash
p=${!#}
case " $INSTALLED " in *" $p "*) echo "install ok installed" ;; *) exit 1 ;; esac
SH
	cat >"$shims/apt-cache" <<'SH'
#!/bin/bash
[[ "$1" = show && "$2" != nosuch* ]]
SH
	cat >"$shims/apt-get" <<'SH'
#!/bin/bash
echo "apt-get $*" >>"$CALLS"
[[ " $* " != *" broken "* ]] || { echo "E: broken has unmet dependencies"; exit 100; }
SH
	cat >"$shims/id" <<'SH'
#!/bin/bash
echo "${FAKE_UID:-0}"
SH
	chmod +x "$shims"/*
	export CALLS=$calls INSTALLED="a b"
	DEPS="$BATS_TEST_DIRNAME/deps.sh"
}

deps() { PATH="$shims:$PATH" "$DEPS" "$@"; }

@test "deps: with every package present it installs nothing and says so" {
	run deps a b
	assert_success
	assert_output "deps: all present"
	[ ! -s "$calls" ]
	run deps --quiet a b
	assert_success
	assert_output ""
}

@test "deps: only the missing packages are installed, after an apt-get update" {
	run deps --quiet a b c d
	assert_success
	run cat "$calls"
	assert_line --index 0 --partial "apt-get update"
	assert_line --index 1 --regexp "^apt-get install .* c d$"
}

@test "deps: a package with no candidate is named with how to install it, exit 2" {
	run --separate-stderr deps --quiet a nosuch-pkg
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"deps: cannot install nosuch-pkg: no package of that name in the apt sources; install it by hand: apt-get install nosuch-pkg"* ]]
	run grep -c "apt-get install" "$calls"
	assert_output 0
}

@test "deps: a package apt-get fails to install is named, exit 2" {
	run --separate-stderr deps --quiet broken
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"deps: cannot install broken: apt-get install failed; install it by hand: apt-get install broken"* ]]
	[[ "$stderr" == *"E: broken has unmet dependencies"* ]]
}

@test "deps: not root and no sudo: one line naming what is missing, exit 2" {
	mkdir -p "$BATS_TEST_TMPDIR/bin"
	for t in sh bash cat grep mktemp rm printf; do ln -s "$(command -v $t)" "$BATS_TEST_TMPDIR/bin/$t"; done
	run --separate-stderr env FAKE_UID=1000 PATH="$shims:$BATS_TEST_TMPDIR/bin" "$DEPS" --quiet c
	[ "$status" -eq 2 ]
	[ "$stderr" = "deps: cannot install c: not root and no sudo; install it by hand: apt-get install c" ]
}

@test "deps: make clean reads no compiler flags, so it installs no build package" {
	root="$BATS_TEST_DIRNAME/.."
	b="$BATS_TEST_TMPDIR/build"
	run make -C "$root" --no-print-directory -n clean BUILD="$b"
	assert_success
	refute_output --partial "deps.sh --quiet pkg-config"
	[ ! -e "$b/config.mk" ]
}

@test "deps: the compiler flags are made in BUILD/config.mk before anything compiles" {
	root="$BATS_TEST_DIRNAME/.."
	b="$BATS_TEST_TMPDIR/build"
	run make -C "$root" --no-print-directory "$b/config.mk" BUILD="$b"
	assert_success
	run grep -c '^PKG_CFLAGS := .*-I/usr/include/hiredis' "$b/config.mk"
	assert_output 1
	run grep -c '^PKG_LIBS := .*-luv.*-lhiredis.*-lcjson' "$b/config.mk"
	assert_output 1
	# libcurl is loaded at run time (lib/io/curl_dl): its headers only
	run grep -c '^PKG_LIBS := .*-lcurl' "$b/config.mk"
	assert_output 0
}
