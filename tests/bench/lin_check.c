/*
 * lin_check -- check a client history recorded against a real cluster with
 * lib/raft/linearize, the checker the simulator uses.
 *
 *   lin_check [FILE]        (default: standard input)
 *
 * One JSON object per line, one per operation:
 *   {"client":3,"kind":"put","key":1,"arg0":7,"arg1":0,"call":T0,"ret":T1,"ok":true,"value":0}
 * kind is put, get, cas or del (lib/raft/linearize's key-value model);
 * arg0/arg1 the inputs (put: the value; cas: expected, new); call and ret
 * the client's monotonic clock in any unit; "ret":null for an operation
 * whose outcome is unknown (timed out, connection lost, or an error that
 * does not prove it failed).  get: ok = found, value = what was read.
 *
 * Prints one JSON line {"verdict","ops","keys","desc"} and exits 0 when the
 * history is linearizable, 1 on a violation, 3 when the search gave up,
 * 2 on bad input.  tests/raft_faults.bats drives it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "raft/linearize.h"

static uint64_t num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsNumber(v) && v->valuedouble >= 0 ? (uint64_t)v->valuedouble : 0;
}

int main(int argc, char **argv)
{
	FILE *f = argc > 1 ? fopen(argv[1], "r") : stdin;
	if (!f) {
		perror(argv[1]);
		return 2;
	}
	struct lin_history *h = lin_history_new();
	if (!h)
		return 2;
	int status = 2;   /* bad input, until the history is checked */
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (n <= 1)
			continue;
		cJSON *o = cJSON_Parse(line);
		const cJSON *kind = o ? cJSON_GetObjectItemCaseSensitive(o, "kind") : NULL;
		if (!cJSON_IsString(kind)) {
			fprintf(stderr, "lin_check: line %ld: not an operation\n", lineno);
			cJSON_Delete(o);
			goto out;
		}
		struct lin_op op = {0};
		const char *k = kind->valuestring;
		op.kind = !strcmp(k, "put") ? LIN_PUT : !strcmp(k, "get") ? LIN_GET : !strcmp(k, "cas") ? LIN_CAS
		        : !strcmp(k, "del") ? LIN_DEL : 0;
		if (!op.kind) {
			fprintf(stderr, "lin_check: line %ld: unknown kind '%s'\n", lineno, k);
			cJSON_Delete(o);
			goto out;
		}
		op.client = (uint32_t)num(o, "client");
		op.key = num(o, "key");
		op.arg[0] = num(o, "arg0");
		op.arg[1] = num(o, "arg1");
		op.call = num(o, "call");
		const cJSON *ret = cJSON_GetObjectItemCaseSensitive(o, "ret");
		if (cJSON_IsNumber(ret)) {
			op.ret = (uint64_t)ret->valuedouble;
			op.ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok"));
			op.value = num(o, "value");
		} else {
			op.ret = LIN_TIME_UNKNOWN;
			op.unknown = 1;
		}
		cJSON_Delete(o);
		if (lin_add(h, &op) < 0) {
			fprintf(stderr, "lin_check: line %ld: refused by the history (ret before call?)\n", lineno);
			goto out;
		}
	}
	struct lin_result r;
	int v = lin_check(h, 0, &r);
	if (v < 0) {
		fprintf(stderr, "lin_check: %s\n", strerror(-v));
		goto out;
	}
	cJSON *out = cJSON_CreateObject();
	cJSON_AddStringToObject(out, "verdict", lin_verdict_name(v));
	cJSON_AddNumberToObject(out, "ops", (double)r.ops);
	cJSON_AddNumberToObject(out, "keys", (double)r.keys);
	cJSON_AddStringToObject(out, "desc", r.desc);
	char *s = cJSON_PrintUnformatted(out);
	puts(s);
	free(s);
	cJSON_Delete(out);
	status = v == LIN_OK ? 0 : v == LIN_VIOLATION ? 1 : 3;
out:
	free(line);
	lin_history_free(h);
	if (f != stdin)
		fclose(f);
	return status;
}
