/*
 * test_trace.c -- obs/trace: W3C Trace Context as its test harness reads
 * it (the cases of w3c/trace-context's test/test.py, written here as our
 * own table), the resource from OTEL_* variables, and the OTLP JSON of a
 * span.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/json.h"
#include "obs/trace.h"
#include "tap.h"

#define TID "0af7651916cd43dd8448eb211c80319c"
#define SID "b7ad6b7169203331"

static const struct { const char *in; int valid; int sampled; const char *why; } parents[] = {
	{"00-" TID "-" SID "-01", 1, 1, "the spec's example"},
	{"00-" TID "-" SID "-00", 1, 0, "unsampled"},
	{"00-" TID "-" SID "-03", 1, 1, "flags 03: bit 0 set, so sampled"},
	{"00-" TID "-" SID "-02", 1, 0, "flags 02: bit 0 clear"},
	{"00-" TID "-" SID "-09", 1, 1, "flags read as hex bits"},
	{" 00-" TID "-" SID "-01", 1, 1, "leading space (OWS)"},
	{"00-" TID "-" SID "-01\t", 1, 1, "trailing tab (OWS)"},
	{"01-" TID "-" SID "-01", 1, 1, "a higher version"},
	{"01-" TID "-" SID "-01-what-the-future-will-be-like", 1, 1,
	 "a higher version with more fields after '-'"},
	{"cc-" TID "-" SID "-01-x", 1, 1, "version cc with a future field"},
	{"01-" TID "-" SID "-01.what-the-future-will-be-like", 0, 0,
	 "a higher version with no '-' after 55 characters"},
	{"01-" TID "-" SID "-0", 0, 0, "a higher version, too short"},
	{"00-" TID "-" SID "-01-", 0, 0, "version 00 with a trailing '-'"},
	{"00-" TID "-" SID "-01-what-the-future-will-be-like", 0, 0,
	 "version 00 with trailing data"},
	{"00-" TID "-" SID "-01 x", 0, 0, "version 00 with trailing text"},
	{"ff-" TID "-" SID "-01", 0, 0, "version ff"},
	{"0-" TID "-" SID "-01", 0, 0, "a one-digit version"},
	{"000-" TID "-" SID "-01", 0, 0, "a three-digit version"},
	{"0g-" TID "-" SID "-01", 0, 0, "version not hex"},
	{"0A-" TID "-" SID "-01", 0, 0, "upper-case version"},
	{"00-0AF7651916CD43DD8448EB211C80319C-" SID "-01", 0, 0, "upper-case trace id"},
	{"00-" TID "-B7AD6B7169203331-01", 0, 0, "upper-case span id"},
	{"00-" TID "-" SID "-0A", 0, 0, "upper-case flags"},
	{"00-00000000000000000000000000000000-" SID "-01", 0, 0, "all-zero trace id"},
	{"00-" TID "-0000000000000000-01", 0, 0, "all-zero span id"},
	{"00-" TID "1-" SID "-01", 0, 0, "trace id one digit too long"},
	{"00-0af7651916cd43dd8448eb211c80319-" SID "-01", 0, 0, "trace id one digit short"},
	{"00-" TID "-b7ad6b716920333-01", 0, 0, "span id one digit short"},
	{"00-" TID "-" SID "-1", 0, 0, "one-digit flags"},
	{"00-" TID "-" SID "-001", 0, 0, "three-digit flags"},
	{"00-" TID "-" SID "-0g", 0, 0, "flags not hex"},
	{"00_" TID "-" SID "-01", 0, 0, "'_' for the first '-'"},
	{"00-" TID "_" SID "-01", 0, 0, "'_' for the second '-'"},
	{"00-" TID "-" SID "_01", 0, 0, "'_' for the third '-'"},
	{"00-0af7651916cd43dd8448eb211c8031.c-" SID "-01", 0, 0, "'.' in the trace id"},
	{"00-" TID "-b7ad6b71692033.1-01", 0, 0, "'.' in the span id"},
	{"00-" TID "-" SID "-.1", 0, 0, "'.' in the flags"},
	{"", 0, 0, "empty"},
	{"   ", 0, 0, "only whitespace"},
	{"00", 0, 0, "only a version"},
	{"00-" TID, 0, 0, "no span id"},
	{"00-" TID "-" SID, 0, 0, "no flags"},
	{"00 " TID " " SID " 01", 0, 0, "spaces for dashes"},
};

static const struct { const char *in; const char *norm; const char *why; } states_ok[] = {
	{"foo=1", "foo=1", "one member"},
	{"foo=1,bar=2", "foo=1,bar=2", "two members"},
	{"foo=1 , bar=2\t", "foo=1,bar=2", "whitespace around members"},
	{"foo=1,,bar=2", "foo=1,bar=2", "an empty member"},
	{",foo=1,", "foo=1", "empty members at both ends"},
	{"", "", "an empty value"},
	{"foo=bar baz", "foo=bar baz", "a space inside a value"},
	{"foo=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~", "foo=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~",
	 "every printable but ',' and '=' in a value"},
	{"a_-*/b=1", "a_-*/b=1", "key punctuation"},
	{"tenant@system=1", "tenant@system=1", "a multi-tenant key"},
	{"0tenant@sys=1", "0tenant@sys=1", "a tenant id starting with a digit"},
	{"t@abcdefghijklmn=1", "t@abcdefghijklmn=1", "a 14-character system id"},
};

static const struct { const char *in; const char *why; } states_bad[] = {
	{"foo", "no '='"},
	{"foo=", "empty value"},
	{"=1", "empty key"},
	{"Foo=1", "upper-case key"},
	{"1foo=1", "a simple key starting with a digit"},
	{"foo.bar=1", "'.' in a key"},
	{"foo=1,foo=2", "a duplicated key"},
	{"foo=a,b=", "an empty second value"},
	{"foo=a=b", "'=' in a value"},
	{"foo=\x7f", "DEL in a value"},
	{"foo=\x01", "a control byte in a value"},
	{"t@=1", "empty system id"},
	{"@s=1", "empty tenant id"},
	{"t@0s=1", "a system id starting with a digit"},
	{"t@abcdefghijklmno=1", "a 15-character system id"},
	{"t@s@x=1", "two '@'"},
};

static void test_parents(void)
{
	for (size_t i = 0; i < sizeof parents / sizeof parents[0]; i++) {
		struct trace_context c;
		memset(&c, 0, sizeof c);
		int r = trace_parent_parse(parents[i].in, strlen(parents[i].in), &c);
		is_int(r, parents[i].valid ? 0 : -EINVAL, "traceparent %s: %s",
		       parents[i].valid ? "valid" : "invalid", parents[i].why);
		if (parents[i].valid)
			is_int(c.flags & TRACE_FLAG_SAMPLED, parents[i].sampled, "sampled bit: %s",
			       parents[i].why);
	}
	/* the parser reads only the bytes it is given */
	const char *full = "00-" TID "-" SID "-01";
	struct trace_context c;
	is_int(trace_parent_parse(full, 54, &c), -EINVAL, "a value cut one byte short is invalid");

	/* format: always version 00, flags reduced to the sampled bit */
	const char *future = "01-" TID "-" SID "-03-more";
	is_int(trace_parent_parse(future, strlen(future), &c), 0, "a future version parses");
	char out[TRACE_PARENT_LEN + 1];
	trace_parent_format(&c, out);
	is_str(out, "00-" TID "-" SID "-01", "a future version is passed on as version 00");
}

static void test_states(void)
{
	char out[TRACE_STATE_MAX];
	for (size_t i = 0; i < sizeof states_ok / sizeof states_ok[0]; i++) {
		long n = trace_state_parse(states_ok[i].in, strlen(states_ok[i].in), out, sizeof out);
		ok(n >= 0, "tracestate valid: %s", states_ok[i].why);
		if (n >= 0)
			is_str(out, states_ok[i].norm, "tracestate normalised: %s", states_ok[i].why);
	}
	for (size_t i = 0; i < sizeof states_bad / sizeof states_bad[0]; i++) {
		long n = trace_state_parse(states_bad[i].in, strlen(states_bad[i].in), out, sizeof out);
		is_int(n, -EINVAL, "tracestate invalid: %s", states_bad[i].why);
	}

	/* 32 members are the limit, 33 are invalid */
	struct buf b = BUF_INIT;
	for (int i = 0; i < 32; i++)
		buf_printf(&b, "%sk%d=v", i ? "," : "", i);
	ok(trace_state_parse(b.data, b.len, out, sizeof out) == (long)b.len, "32 members are valid");
	buf_puts(&b, ",k32=v");
	is_int(trace_state_parse(b.data, b.len, out, sizeof out), -EINVAL, "33 members are invalid");
	buf_reset(&b);

	/* key and value lengths: 256 and 257 */
	buf_putc(&b, 'a');
	for (int i = 0; i < 255; i++)
		buf_putc(&b, 'b');
	buf_puts(&b, "=1");
	ok(trace_state_parse(b.data, b.len, out, sizeof out) > 0, "a 256-character key is valid");
	buf_reset(&b);
	buf_putc(&b, 'a');
	for (int i = 0; i < 256; i++)
		buf_putc(&b, 'b');
	buf_puts(&b, "=1");
	is_int(trace_state_parse(b.data, b.len, out, sizeof out), -EINVAL, "a 257-character key is invalid");
	buf_reset(&b);
	buf_puts(&b, "k=");
	for (int i = 0; i < 256; i++)
		buf_putc(&b, 'v');
	ok(trace_state_parse(b.data, b.len, out, sizeof out) > 0, "a 256-character value is valid");
	buf_putc(&b, 'v');
	is_int(trace_state_parse(b.data, b.len, out, sizeof out), -EINVAL, "a 257-character value is invalid");
	buf_reset(&b);

	/* the longest valid tracestate fits TRACE_STATE_MAX */
	for (int i = 0; i < 32; i++) {
		buf_printf(&b, "%sk%02d", i ? "," : "", i);
		for (int j = 0; j < 253; j++)
			buf_putc(&b, 'x');
		buf_putc(&b, '=');
		for (int j = 0; j < 256; j++)
			buf_putc(&b, 'v');
	}
	is_int((long long)b.len + 1, TRACE_STATE_MAX, "the longest tracestate is TRACE_STATE_MAX with its NUL");
	ok(trace_state_parse(b.data, b.len, out, sizeof out) == (long)b.len, "the longest tracestate parses");
	buf_free(&b);
}

static void test_env(void)
{
	struct trace_context c;
	unsetenv("TRACEPARENT");
	unsetenv("TRACESTATE");
	is_int(trace_context_from_env(&c), -ENOENT, "no TRACEPARENT: -ENOENT");
	setenv("TRACEPARENT", "00-" TID "-" SID "-01", 1);
	setenv("TRACESTATE", "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7", 1);
	is_int(trace_context_from_env(&c), 0, "a valid TRACEPARENT is read");
	is_str(c.state, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7", "TRACESTATE is carried");
	setenv("TRACESTATE", "Congo=1", 1);
	is_int(trace_context_from_env(&c), 0, "an invalid TRACESTATE keeps the parent");
	is_str(c.state, "", "an invalid TRACESTATE is dropped");
	setenv("TRACEPARENT", "00-" TID "-" SID "-01-", 1);
	is_int(trace_context_from_env(&c), -EINVAL, "an invalid TRACEPARENT: -EINVAL");
	unsetenv("TRACEPARENT");
	unsetenv("TRACESTATE");
}

static void test_ids(void)
{
	uint8_t a[16], b[16], s[8];
	trace_id_random(a);
	trace_id_random(b);
	trace_span_id_random(s);
	ok(memcmp(a, b, 16) != 0, "two random trace ids differ");
	char hex[33];
	trace_hex(a, 16, hex);
	ok(strlen(hex) == 32 && strspn(hex, "0123456789abcdef") == 32, "trace ids print as lower-case hex");
	uint8_t back[16];
	is_int(trace_unhex(hex, 32, back, 16), 0, "hex reads back");
	ok(!memcmp(a, back, 16), "hex round-trips");
	is_int(trace_unhex("0A", 2, back, 1), -EINVAL, "unhex refuses upper case");
	is_int(trace_kind_parse("server"), TRACE_KIND_SERVER, "kind server is 2");
	is_int(trace_kind_parse("consumer"), TRACE_KIND_CONSUMER, "kind consumer is 5");
	is_int(trace_kind_parse("Server"), -EINVAL, "kind names are lower case");
	is_int(trace_kind_parse("unspecified"), -EINVAL, "unspecified is not a kind to ask for");
}

static void test_attr_parse(void)
{
	struct trace_attrs l = {0};
	const char *why = NULL;
	is_int(trace_attr_parse(&l, "a=x=y", &why), 0, "k=v with '=' in the value");
	is_int(trace_attr_parse(&l, "n:int=-42", &why), 0, "k:int=v");
	is_int(trace_attr_parse(&l, "big:int=9223372036854775807", &why), 0, "int64 max");
	is_int(trace_attr_parse(&l, "b:bool=true", &why), 0, "k:bool=true");
	is_int(trace_attr_parse(&l, "d:double=2.5", &why), 0, "k:double=v");
	is_int(trace_attr_parse(&l, "url=http://x:80/", &why), 0, "a ':' after '=' is part of the value");
	is_int(l.n, 6, "six attributes");
	is_str(trace_attr_get(&l, "a")->v.s, "x=y", "string value kept whole");
	is_int(trace_attr_get(&l, "n")->v.i, -42, "int value");
	ok(trace_attr_get(&l, "big")->v.i == INT64_MAX, "int64 max exact");
	ok(trace_attr_get(&l, "b")->v.b, "bool value");
	ok(trace_attr_get(&l, "d")->v.d == 2.5, "double value");
	is_str(trace_attr_get(&l, "url")->v.s, "http://x:80/", "url value");
	static const char *bad[] = {"novalue", "=v", ":int=1", "n:int=1.5", "n:int=",
	                            "n:int=9223372036854775808", "b:bool=yes", "d:double=nan",
	                            "d:double=inf", "d:double=1x", "d:double=", "x:float=1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		is_int(trace_attr_parse(&l, bad[i], &why), -EINVAL, "attribute '%s' is refused", bad[i]);
		ok(why != NULL, "with a reason");
	}
	is_int(l.n, 6, "refused attributes add nothing");
	trace_attr_set_int(&l, "a", 1);
	is_int(l.n, 6, "setting a key again replaces it");
	is_int(trace_attr_get(&l, "a")->type, TRACE_ATTR_INT, "with its new type");
	for (int i = 0; i < TRACE_MAX_ATTRS; i++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", i);
		trace_attr_set_bool(&l, k, true);
	}
	is_int(l.n, TRACE_MAX_ATTRS, "the list stops at its limit");
	is_int(l.dropped, 6, "and counts what did not fit");
	trace_attrs_free(&l);
	is_int(l.n, 0, "free empties the list");
}

static void test_resource(void)
{
	struct trace_attrs r;
	is_int(trace_resource_init(&r, "prog", NULL, NULL), 0, "no variables");
	is_str(trace_attr_get(&r, "service.name")->v.s, "prog", "service.name defaults to the program");
	trace_attrs_free(&r);

	is_int(trace_resource_init(&r, "prog", "svc", "service.name=other,team=a"), 0, "both variables");
	is_str(trace_attr_get(&r, "service.name")->v.s, "svc", "OTEL_SERVICE_NAME wins");
	is_str(trace_attr_get(&r, "team")->v.s, "a", "other attributes are kept");
	trace_attrs_free(&r);

	is_int(trace_resource_init(&r, "prog", "", "service.name=other"), 0, "an empty OTEL_SERVICE_NAME");
	is_str(trace_attr_get(&r, "service.name")->v.s, "other",
	       "service.name from OTEL_RESOURCE_ATTRIBUTES when OTEL_SERVICE_NAME is empty");
	trace_attrs_free(&r);

	is_int(trace_resource_init(&r, "prog", NULL, " k1 = a%20b%2Cc , k2=%E2%82%AC ,"), 0,
	       "percent-encoded values, whitespace, a trailing comma");
	is_str(trace_attr_get(&r, "k1")->v.s, "a b,c", "values are percent-decoded");
	is_str(trace_attr_get(&r, "k2")->v.s, "\xe2\x82\xac", "into UTF-8 bytes");
	is_int(r.n, 3, "service.name and two attributes");
	trace_attrs_free(&r);

	static const char *bad[] = {"k=a b", "k=%2", "k=%zz", "k", "=v", "k=v,x", "k=\"v\"",
	                            "k=a;b", "k=%00", "k y=v", "ok=1,bad=%"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		is_int(trace_resource_init(&r, "prog", NULL, bad[i]), -EINVAL,
		       "OTEL_RESOURCE_ATTRIBUTES '%s' is refused", bad[i]);
		is_int(r.n, 1, "and discarded whole ('%s')", bad[i]);
		is_str(trace_attr_get(&r, "service.name")->v.s, "prog", "service.name is the default");
		trace_attrs_free(&r);
	}
	is_int(trace_resource_init(&r, "prog", "svc", "service.name=x,bad"), -EINVAL, "a bad variable with OTEL_SERVICE_NAME");
	is_str(trace_attr_get(&r, "service.name")->v.s, "svc", "OTEL_SERVICE_NAME still applies");
	trace_attrs_free(&r);
}

static void test_json(void)
{
	struct trace_context parent;
	const char *tp = "00-" TID "-" SID "-01";
	trace_parent_parse(tp, strlen(tp), &parent);
	strcpy(parent.state, "rojo=1");
	struct trace_span sp;
	trace_span_init(&sp, "build \"x\"", TRACE_KIND_CLIENT, &parent);
	ok(!memcmp(sp.ctx.trace_id, parent.trace_id, 16), "a child keeps the trace id");
	ok(memcmp(sp.ctx.span_id, parent.span_id, 8) != 0, "and gets its own span id");
	sp.start_ns = 1700000000123456789ull;
	sp.end_ns = 1700000001000000000ull;
	trace_attr_set_str(&sp.attrs, "s", "v");
	trace_attr_set_int(&sp.attrs, "i", INT64_MIN);
	trace_attr_set_bool(&sp.attrs, "b", false);
	trace_attr_set_double(&sp.attrs, "d", 0.1);
	struct trace_attrs ea = {0};
	trace_attr_set_int(&ea, "n", 3);
	trace_span_event(&sp, "compiled", 1700000000500000000ull, &ea);
	is_int(ea.n, 0, "event attributes are moved");
	trace_span_end(&sp, TRACE_STATUS_ERROR, "exit status 7");
	ok(sp.end_ns == 1700000001000000000ull, "an end time already set is kept");
	struct trace_attrs res;
	trace_resource_init(&res, "prog", "svc", NULL);
	struct buf b = BUF_INIT;
	trace_span_json(&sp, &res, &b);
	char sid[17];
	trace_hex(sp.ctx.span_id, 8, sid);
	struct buf want = BUF_INIT;
	buf_printf(&want,
	           "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},"
	           "\"scopeSpans\":[{\"scope\":{\"name\":\"dsys\",\"version\":\"%s\"},\"spans\":[{"
	           "\"traceId\":\"" TID "\",\"spanId\":\"%s\",\"traceState\":\"rojo=1\",\"parentSpanId\":\"" SID "\","
	           "\"flags\":1,\"name\":\"build \\\"x\\\"\",\"kind\":3,"
	           "\"startTimeUnixNano\":\"1700000000123456789\",\"endTimeUnixNano\":\"1700000001000000000\","
	           "\"attributes\":[{\"key\":\"s\",\"value\":{\"stringValue\":\"v\"}},"
	           "{\"key\":\"i\",\"value\":{\"intValue\":\"-9223372036854775808\"}},"
	           "{\"key\":\"b\",\"value\":{\"boolValue\":false}},"
	           "{\"key\":\"d\",\"value\":{\"doubleValue\":0.1}}],"
	           "\"events\":[{\"timeUnixNano\":\"1700000000500000000\",\"name\":\"compiled\","
	           "\"attributes\":[{\"key\":\"n\",\"value\":{\"intValue\":\"3\"}}]}],"
	           "\"status\":{\"message\":\"exit status 7\",\"code\":2}}]}]}]}",
	           DSYS_VERSION, sid);
	buf_putc(&b, '\0');
	buf_putc(&want, '\0');
	is_str(b.data, want.data, "the OTLP JSON of a span");

	/* it is one JSON value, and its attributes read back */
	json_value *v = json_parse(b.data, strlen(b.data), NULL);
	ok(v != NULL, "the span is valid JSON");
	json_value *span = v ? cJSON_GetArrayItem(json_get(cJSON_GetArrayItem(json_get(
	        cJSON_GetArrayItem(json_get(v, "resourceSpans"), 0), "scopeSpans"), 0), "spans"), 0) : NULL;
	struct trace_attrs back = {0};
	is_int(trace_attrs_from_json(json_get(span, "attributes"), &back), 0, "attributes read back");
	is_int(back.n, 4, "all four");
	ok(back.n == 4 && trace_attr_get(&back, "i")->v.i == INT64_MIN, "intValue exact");
	ok(back.n == 4 && trace_attr_get(&back, "d")->v.d == 0.1, "doubleValue exact");
	trace_attrs_free(&back);
	json_free(v);

	/* a root span has no parentSpanId */
	struct trace_span root;
	trace_span_init(&root, "root", TRACE_KIND_INTERNAL, NULL);
	ok(!root.has_parent && (root.ctx.flags & TRACE_FLAG_SAMPLED), "a root is sampled and has no parent");
	trace_span_end(&root, TRACE_STATUS_UNSET, NULL);
	ok(root.end_ns >= root.start_ns, "end is not before start");
	buf_reset(&b);
	trace_span_json(&root, &res, &b);
	buf_putc(&b, '\0');
	ok(!strstr(b.data, "parentSpanId") && !strstr(b.data, "traceState"), "a root span omits parentSpanId");
	ok(strstr(b.data, "\"status\":{\"code\":0}") != NULL, "status unset is code 0 with no message");
	b.len--;

	/* the file exporter appends whole lines */
	char path[] = "/tmp/test_trace_XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	is_int(trace_export_file(path, &b), 0, "export one line");
	is_int(trace_export_file(path, &b), 0, "export a second line");
	struct buf f = BUF_INIT;
	buf_read_file(&f, path, 1 << 20);
	is_int((long long)f.len, 2 * ((long long)b.len + 1), "two whole lines in the file");
	unlink(path);
	is_int(trace_export_file("/nonexistent/dir/x", &b), -ENOENT, "an unwritable path is an error");
	buf_free(&f);

	trace_span_free(&root);
	trace_span_free(&sp);
	trace_attrs_free(&res);
	buf_free(&b);
	buf_free(&want);
}

static void test_sampler(void)
{
	struct trace_sampler s;
	struct trace_context on = {.flags = 1}, off = {.flags = 0};
	uint8_t low[16] = {0}, high[16];
	memset(high, 0xff, sizeof high);
	low[15] = 1;

	is_int(trace_sampler_init(&s, NULL, NULL), 0, "no sampler set");
	ok(trace_sample(&s, NULL, low), "default: a root is sampled");
	ok(trace_sample(&s, &on, low), "default: a sampled parent's child is sampled");
	ok(!trace_sample(&s, &off, low), "default: an unsampled parent's child is not");

	is_int(trace_sampler_init(&s, "always_on", NULL), 0, "always_on");
	ok(trace_sample(&s, &off, low), "always_on samples under an unsampled parent");
	is_int(trace_sampler_init(&s, "always_off", NULL), 0, "always_off");
	ok(!trace_sample(&s, NULL, low) && !trace_sample(&s, &on, low), "always_off samples nothing");
	is_int(trace_sampler_init(&s, "parentbased_always_off", NULL), 0, "parentbased_always_off");
	ok(!trace_sample(&s, NULL, low), "parentbased_always_off: a root is not sampled");
	ok(trace_sample(&s, &on, low), "parentbased_always_off: a sampled parent is followed");

	is_int(trace_sampler_init(&s, "traceidratio", "0.5"), 0, "traceidratio 0.5");
	ok(trace_sample(&s, NULL, low), "a low trace id is under the ratio");
	ok(!trace_sample(&s, NULL, high), "a high trace id is over it");
	ok(trace_sample(&s, &off, low), "traceidratio alone ignores the parent");
	is_int(trace_sampler_init(&s, "parentbased_traceidratio", "0"), 0, "parentbased_traceidratio 0");
	ok(!trace_sample(&s, NULL, low), "ratio 0 samples no root");
	ok(trace_sample(&s, &on, high), "but follows a sampled parent");
	is_int(trace_sampler_init(&s, "traceidratio", "1"), 0, "ratio 1");
	ok(trace_sample(&s, NULL, high), "ratio 1 samples every root");
	/* about half of random trace ids at 0.5 */
	trace_sampler_init(&s, "traceidratio", "0.5");
	int n = 0;
	for (int i = 0; i < 2000; i++) {
		uint8_t id[16];
		trace_id_random(id);
		n += trace_sample(&s, NULL, id);
	}
	ok(n > 800 && n < 1200, "ratio 0.5 samples about half (%d of 2000)", n);

	static const char *bad[][2] = {{"sometimes", NULL}, {"traceidratio", "1.5"}, {"traceidratio", "-0.1"},
	                               {"traceidratio", "x"}, {"parentbased_", NULL}, {"jaeger_remote", NULL}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		is_int(trace_sampler_init(&s, bad[i][0], bad[i][1]), -EINVAL, "sampler '%s' '%s' is refused",
		       bad[i][0], bad[i][1] ? bad[i][1] : "");
		ok(s.parent_based && s.root == TRACE_SAMPLE_ALWAYS_ON, "and the default is used");
	}
}

/* W3C Baggage: what may be carried on as a header, and what may not. */
static void test_baggage(void)
{
	static const char *const good[] = {
		"userId=alice", "userId=alice,serverNode=DF%2028,isProduction=false",
		" a = 1 , b=2 ", "k=v;prop", "k=v;p1=x;p2", "k=", "k=v%2C", "k=!#$&'()*+-./:<>?@[]^_`{|}~",
	};
	static const char *const bad[] = {
		"", "novalue", "=v", "k=v,", ",k=v", "k=a b", "k=\"q\"", "k=a\\b", "k v=1",
		"k=v;", "k=v;=x", "k=v\r\nX-Evil: 1", "k=caf\xc3\xa9",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		ok(trace_baggage_valid(good[i], strlen(good[i])), "baggage '%s' is valid", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(!trace_baggage_valid(bad[i], strlen(bad[i])), "bad baggage %zu is invalid", i);
	static char big[TRACE_BAGGAGE_MAX + 2];
	memset(big, 'v', sizeof big - 1);
	memcpy(big, "k=", 2);
	ok(!trace_baggage_valid(big, TRACE_BAGGAGE_MAX + 1), "more than 8192 bytes is invalid");
	ok(trace_baggage_valid(big, TRACE_BAGGAGE_MAX), "8192 bytes is valid");
	setenv("BAGGAGE", "a=1", 1);
	ok(trace_baggage_from_env() && strcmp(trace_baggage_from_env(), "a=1") == 0, "BAGGAGE is read");
	setenv("BAGGAGE", "a 1", 1);
	ok(trace_baggage_from_env() == NULL, "an invalid BAGGAGE is not carried");
	unsetenv("BAGGAGE");
	ok(trace_baggage_from_env() == NULL, "no BAGGAGE, nothing carried");
}

static void collect_member(void *ud, const char *key, const char *value)
{
	struct buf *b = ud;
	buf_printf(b, "[%s|%s]", key, value);
}

/* The members a server records: keys, decoded values, no properties. */
static void test_baggage_members(void)
{
	static const char *const cases[][2] = {
		{"userId=alice", "[userId|alice]"},
		{" a = 1 ;p=x; q , b=DF%2028,c=", "[a|1][b|DF 28][c|]"},
		{"city=Z%C3%BCrich,bad=%FF,ctl=a%0Ab,nul=%00,half=%4", "[city|Z\xc3\xbcrich][bad|%FF][ctl|a%0Ab][nul|%00][half|%4]"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *in = cases[i][0];
		char out[256];
		struct buf got = BUF_INIT;
		long r = trace_baggage_members(in, strlen(in), out, 2 * strlen(in) + 2, collect_member, &got);
		ok(r > 0 && (size_t)r <= 2 * strlen(in) + 2, "members of '%s' fit in 2n+2 bytes (%ld)", in, r);
		ok(got.len && strcmp(got.data, cases[i][1]) == 0, "members of '%s' are %s (got %s)", in, cases[i][1],
		   got.data ? got.data : "");
		buf_free(&got);
	}
	char small[8];
	struct buf got = BUF_INIT;
	is_int(trace_baggage_members("a=1,bbbb=2222", 13, small, sizeof small, collect_member, &got), -ENOSPC,
	       "a scratch too small says so");
	ok(got.len && strcmp(got.data, "[a|1]") == 0, "after the members that fit");
	buf_free(&got);
}

int main(void)
{
	test_baggage();
	test_baggage_members();
	test_parents();
	test_states();
	test_env();
	test_ids();
	test_attr_parse();
	test_resource();
	test_json();
	test_sampler();
	return tap_done();
}
