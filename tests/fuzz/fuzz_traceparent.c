/*
 * fuzz_traceparent.c -- libFuzzer target for obs/trace's W3C Trace Context
 * parsers and the OTEL_RESOURCE_ATTRIBUTES reader.
 *
 * Every call gets a copy of exactly the input bytes (no NUL after them),
 * so ASan reports any read past the end.  Properties (trap on violation):
 *   - a traceparent that parses has non-zero ids, and formatting it gives
 *     a version 00 value that parses to the same ids and sampled bit;
 *   - a tracestate that parses is no longer than its input, and parsing
 *     the normalised form again gives it back unchanged;
 *   - the resource always has service.name, whatever the variable holds.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "obs/trace.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static char state[TRACE_STATE_MAX], state2[TRACE_STATE_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size ? size : 1);
	memcpy(in, data, size);

	struct trace_context c, d;
	if (trace_parent_parse(in, size, &c) == 0) {
		static const uint8_t zero[16];
		CHECK(memcmp(c.trace_id, zero, 16) != 0 && memcmp(c.span_id, zero, 8) != 0);
		char out[TRACE_PARENT_LEN + 1];
		trace_parent_format(&c, out);
		CHECK(trace_parent_parse(out, TRACE_PARENT_LEN, &d) == 0);
		CHECK(!memcmp(c.trace_id, d.trace_id, 16) && !memcmp(c.span_id, d.span_id, 8));
		CHECK((c.flags & TRACE_FLAG_SAMPLED) == d.flags);
	}

	long n = trace_state_parse(in, size, state, sizeof state);
	CHECK(n == -EINVAL || (n >= 0 && (size_t)n <= size));
	if (n >= 0) {
		CHECK(strlen(state) == (size_t)n);
		long m = trace_state_parse(state, (size_t)n, state2, sizeof state2);
		CHECK(m == n && !memcmp(state, state2, (size_t)n));
	}

	/* the resource reader takes a C string: cut at the first NUL */
	char *s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	struct trace_attrs r;
	trace_resource_init(&r, "fuzz", NULL, s);
	CHECK(trace_attr_get(&r, "service.name") != NULL);
	trace_attrs_free(&r);
	free(s);
	free(in);
	return 0;
}
