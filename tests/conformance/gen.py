#!/usr/bin/env python3
"""gen.py -- write tests/conformance.bats from tests/conformance/cases.txt.

Each case of the table becomes one @test, so the TAP count is the number of
cases and a failure names the case.  setup_file plays the whole table in one
send.py process (a process per case would double the file's run time) and
each test reports its case's result; the test carries the case's lines as
comments, so the .bats file reads on its own.

    python3 tests/conformance/gen.py           # rewrite tests/conformance.bats
    python3 tests/conformance/gen.py --check   # exit 1 if it is out of date

Every case is checked with send.py's own parser first, so a malformed case
fails here, not at test time.  Case names must be unique within a group and
hold no character the shell or bats would interpret.
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
import send  # noqa: E402

CASES = os.path.join(HERE, "cases.txt")
BATS = os.path.join(os.path.dirname(HERE), "conformance.bats")

PROLOGUE = r'''#!/usr/bin/env bats
# GENERATED from tests/conformance/cases.txt by tests/conformance/gen.py:
# edit the table, then run `python3 tests/conformance/gen.py`.
#
# The raw-socket conformance suite of dsys-serve, grouped as RFC 9112 groups
# its rules.  Each test is one case: exact request bytes (possibly in several
# writes), the statuses expected in order, and whether the server must close
# the connection afterwards.  One server serves the whole file; setup_file
# plays every case through tests/conformance/send.py, and each test shows
# its case's transcript when it did not match.

bats_require_minimum_version 1.5.0     # run -1, run -2

# helpers.bash is loaded in setup_file only: loaded at the top it would be
# sourced again, with bats-support and bats-assert, for each of the hundreds
# of tests, which triples the file's run time.
setup_file() {
	load helpers
	local dir=$BATS_FILE_TMPDIR ready
	export DSYS_PY
	"$DSYS_BIN/dsys-serve" --listen 127.0.0.1:0 --max-uri-bytes 1024 \
		--max-header-bytes 4096 --max-body-bytes 4096 --header-timeout 1s \
		--route 'POST /echo=posted' >"$dir/serve.out" 2>"$dir/serve.err" 3>&- &
	echo $! >"$dir/serve.pid"
	ready=$(wait_ready "$dir/serve.out" "$(cat "$dir/serve.pid")") || return 1
	CONF_PORT=$(ready_port "$ready")
	export CONF_PORT
	# Every case, in table order, on its own connection; one result file each.
	mkdir -p "$dir/results"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT" \
		--table "$BATS_TEST_DIRNAME/conformance/cases.txt" --results "$dir/results" || true
}

teardown_file() {
	kill_server "$(cat "$BATS_FILE_TMPDIR/serve.pid")"
}

# conf_result N: case N of the table (from 1) passed in setup_file; when it
# did not, what was expected, what happened and the transcript.
conf_result() {
	local r=$BATS_FILE_TMPDIR/results/$1
	if [ -e "$r.pass" ]; then
		return 0
	elif [ -e "$r.fail" ]; then
		cat "$r.fail"
	else
		echo "case $1 was not played (did send.py fail? see setup_file)"
	fi
	return 1
}

# conf: play the case on stdin now.
conf() {
	"$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT"
}

@test "conformance: the generated tests match tests/conformance/cases.txt" {
	"$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/gen.py" --check
}
'''

EPILOGUE = r'''
@test "conformance: every case that passes still passes with its writes cut at random places" {
	local dir=$BATS_FILE_TMPDIR/split f n bad=
	mkdir -p "$dir"
	"$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT" --split 1 \
		--table "$BATS_TEST_DIRNAME/conformance/cases.txt" --results "$dir" || true
	for f in "$BATS_FILE_TMPDIR"/results/*.pass; do
		n=$(basename "$f" .pass)
		if [ ! -e "$dir/$n.pass" ]; then
			echo "case $n, split (send.py --split 1):"
			cat "$dir/$n.fail" 2>/dev/null
			bad=1
		fi
	done
	[ -z "$bad" ]
}

# The sender itself must be able to fail: each of these cases is wrong on
# purpose, and send.py must say so (exit 1), or reject the case (exit 2).
@test "conformance: send.py fails a case whose expected status is wrong" {
	run -1 conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 404 open
CASE
}

@test "conformance: send.py fails a case that expects open when the server closes" {
	run -1 conf <<'CASE'
send GET /hello HTTP/1.0\r\n\r\n
expect 200 open
CASE
}

@test "conformance: send.py fails a case that expects close when the server keeps the connection" {
	run -1 "$DSYS_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT" --timeout 0.5 <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 close
CASE
}

@test "conformance: send.py fails a case when an answer comes that it did not expect" {
	run -1 conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n
expect 200 close
CASE
}

@test "conformance: send.py fails a case whose header check does not hold" {
	run -1 conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
header 1 content-length: 17
CASE
}

@test "conformance: send.py rejects a malformed case with exit 2" {
	run -2 conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 maybe
CASE
}

@test "conformance: the server is still running and serving after every case" {
	kill -0 "$(cat "$BATS_FILE_TMPDIR/serve.pid")"
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
CASE
}
'''


def render(cases):
    out = [PROLOGUE]
    seen = set()
    for i, (group, name, lines, n) in enumerate(cases, 1):
        title = "conformance: %s: %s" % (group, name)
        if re.search(r'["$`\\]', title):
            sys.exit("cases.txt:%d: no \" $ ` or \\ in a case name" % n)
        if title in seen:
            sys.exit("cases.txt:%d: duplicate case name %r" % (n, name))
        seen.add(title)
        try:
            send.parse_case(lines)
        except send.CaseError as e:
            sys.exit("cases.txt:%d: %s" % (n, e))
        body = "".join("\t# %s\n" % l for l in lines)
        out.append('\n@test "%s" {\n%s\tconf_result %d\n}\n' % (title, body, i))
    out.append(EPILOGUE)
    return "".join(out)


def main():
    text = render(send.read_table(CASES))
    if sys.argv[1:] == ["--check"]:
        with open(BATS, encoding="utf-8") as f:
            if f.read() != text:
                print("tests/conformance.bats is out of date: run python3 tests/conformance/gen.py")
                return 1
        return 0
    if sys.argv[1:]:
        print("usage: gen.py [--check]", file=sys.stderr)
        return 2
    with open(BATS, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote %s: %d cases" % (os.path.relpath(BATS), len(send.read_table(CASES))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
