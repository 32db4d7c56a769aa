#!/bin/bash
# cron-once.sh -- a cron job that every machine starts at the same minute
# but that must run on one machine only.
#
# On each machine the crontab line is:
#
#   0 3 * * * DSYS_STORE=redis://lockhost:6379 dsys-lock run nightly-report \
#             --nowait --conflict-exit-code 0 --ttl 1m -- /usr/local/bin/report
#
# The first machine to reach the store runs the report while dsys-lock
# renews the lock; the others find it held and, with --conflict-exit-code 0,
# exit 0 at once, so cron mails nothing.  If the winner dies, its lock ends
# with its TTL (on file: at once); if it is paused past its TTL, its report
# is stopped (exit 5) and DSYS_LOCK_FENCE tells a downstream store which
# writer came last.
#
# This script plays five machines on this one: it starts five such jobs at
# once against one store (DSYS_STORE, or a fresh file: directory) and prints
# what ran, one JSON line per report that ran: exactly one.
set -eu
[ -n "${DSYS_BIN:-}" ] && PATH="$DSYS_BIN:$PATH"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export DSYS_STORE=${DSYS_STORE:-file:$tmp/locks}

report() {
	# the job: say where it ran and with which fence, and take a while
	printf '{"ran_on":"machine-%s","fence":%s}\n' "$1" "$DSYS_LOCK_FENCE"
	sleep 2
}
export -f report

pids=()
for m in 1 2 3 4 5; do
	dsys-lock run "nightly-report-$$" --nowait --conflict-exit-code 0 --ttl 10s \
		-- bash -c 'report "$0"' "$m" 2>/dev/null &
	pids+=($!)
done
for p in "${pids[@]}"; do
	wait "$p"
done
