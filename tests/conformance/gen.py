#!/usr/bin/env python3
"""gen.py -- write tests/conformance.bats from tests/conformance/cases.txt.

Each case of the table becomes one @test, so the TAP count is the number of
cases and a failure names the case.  The test carries the case's lines
verbatim (a heredoc fed to send.py), so the .bats file reads on its own.

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
# the connection afterwards; tests/conformance/send.py plays it and prints
# the transcript when it does not match.  One server serves the whole file.

setup_file() {
	local bin=${DSYS_BIN:-$BATS_TEST_DIRNAME/../build/bin}
	local dir=$BATS_FILE_TMPDIR
	CONF_PY=/usr/bin/python3
	[ -x "$CONF_PY" ] || CONF_PY=python3
	export CONF_PY
	"$bin/dsys-serve" --listen 127.0.0.1:0 --max-uri-bytes 1024 \
		--max-header-bytes 4096 --max-body-bytes 4096 --header-timeout 1s \
		--route 'POST /echo=posted' >"$dir/serve.out" 2>"$dir/serve.err" 3>&- &
	echo $! >"$dir/serve.pid"
	local i port=
	for ((i = 0; i < 200; i++)); do
		port=$(sed -n 's/.*"event":"ready".*"listen":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' "$dir/serve.out")
		[ -n "$port" ] && break
		kill -0 "$(cat "$dir/serve.pid")" 2>/dev/null || break
		sleep 0.05
	done
	if [ -z "$port" ]; then
		echo "dsys-serve did not print its ready line:" >&2
		cat "$dir/serve.out" "$dir/serve.err" >&2
		return 1
	fi
	export CONF_PORT=$port
}

teardown_file() {
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/serve.pid" 2>/dev/null) || return 0
	kill "$pid" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null || true
}

# conf: play the case on stdin against the server; send.py prints what
# was expected, what happened and the transcript when they differ.
conf() {
	"$CONF_PY" "$BATS_TEST_DIRNAME/conformance/send.py" --port "$CONF_PORT"
}

@test "conformance: the generated tests match tests/conformance/cases.txt" {
	"$CONF_PY" "$BATS_TEST_DIRNAME/conformance/gen.py" --check
}
'''

EPILOGUE = r'''
@test "conformance: the server is still running and serving after every case" {
	kill -0 "$(cat "$BATS_FILE_TMPDIR/serve.pid")"
	conf <<'CASE'
send GET /hello HTTP/1.1\r\nHost: a\r\n\r\n
expect 200 open
CASE
}
'''


def read_cases(path):
    """Returns [(group, name, [lines])] in file order."""
    cases, group, cur = [], None, None
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            if word == "group":
                group, cur = rest.strip(), None
            elif word == "case":
                if group is None:
                    sys.exit("%s:%d: case before any group" % (path, n))
                cur = (group, rest.strip(), [], n)
                cases.append(cur)
            elif line.strip():
                if cur is None:
                    sys.exit("%s:%d: line outside a case" % (path, n))
                cur[2].append(line)
    return cases


def render(cases):
    out = [PROLOGUE]
    seen = set()
    for group, name, lines, n in cases:
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
        out.append('\n@test "%s" {\n\tconf <<\'CASE\'\n%s\nCASE\n}\n' % (title, "\n".join(lines)))
    out.append(EPILOGUE)
    return "".join(out)


def main():
    text = render(read_cases(CASES))
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
    print("wrote %s: %d cases" % (os.path.relpath(BATS), len(read_cases(CASES))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
