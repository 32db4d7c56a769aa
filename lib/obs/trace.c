/*
 * obs/trace.c -- W3C Trace Context, spans, and their OTLP JSON form.
 *
 * The parsers are strict where the W3C recommendation is strict, because a
 * tracer that accepts what others reject (upper-case hex, all-zero ids,
 * trailing bytes after a version 00 header) splits one trace into two
 * halves that no backend can join.  They read only the bytes they are
 * given (no NUL needed), so the fuzz target can feed them anything.
 *
 * A span is a plain struct with bounded arrays: attributes, events and
 * the attributes of events each have a limit (TRACE_MAX_*), and what does
 * not fit is counted as dropped, as OpenTelemetry's span limits do, rather
 * than grown without bound.
 */
#include "obs/trace.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "base/hex.h"
#include "base/invariant.h"

static bool is_lchex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

void trace_hex(const uint8_t *id, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[id[i] >> 4];
		out[2 * i + 1] = d[id[i] & 15];
	}
	out[2 * n] = '\0';
}

int trace_unhex(const char *s, size_t len, uint8_t *id, size_t n)
{
	if (len != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned char h = (unsigned char)s[2 * i], l = (unsigned char)s[2 * i + 1];
		if (!is_lchex(h) || !is_lchex(l))
			return -EINVAL;
		id[i] = (uint8_t)(hex_val(h) << 4 | hex_val(l));
	}
	return 0;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

int trace_parent_parse(const char *s, size_t n, struct trace_context *c)
{
	/* optional whitespace around the value, as around an HTTP field */
	while (n > 0 && is_ows(s[0]))
		s++, n--;
	while (n > 0 && is_ows(s[n - 1]))
		n--;
	if (n < TRACE_PARENT_LEN)
		return -EINVAL;
	uint8_t version;
	if (trace_unhex(s, 2, &version, 1) < 0 || version == 0xff)
		return -EINVAL;
	/* version 00 is exactly 55 characters; a later version may add
	 * fields after a '-', and we read the ones we know */
	if (version == 0 && n != TRACE_PARENT_LEN)
		return -EINVAL;
	if (n > TRACE_PARENT_LEN && s[TRACE_PARENT_LEN] != '-')
		return -EINVAL;
	if (s[2] != '-' || s[35] != '-' || s[52] != '-')
		return -EINVAL;
	uint8_t tid[16], sid[8], flags;
	if (trace_unhex(s + 3, 32, tid, 16) < 0 || trace_unhex(s + 36, 16, sid, 8) < 0 ||
	    trace_unhex(s + 53, 2, &flags, 1) < 0)
		return -EINVAL;
	if (all_zero(tid, 16) || all_zero(sid, 8))
		return -EINVAL;
	memcpy(c->trace_id, tid, 16);
	memcpy(c->span_id, sid, 8);
	c->flags = flags;
	return 0;
}

void trace_parent_format(const struct trace_context *c, char out[TRACE_PARENT_LEN + 1])
{
	memcpy(out, "00-", 3);
	trace_hex(c->trace_id, 16, out + 3);
	out[35] = '-';
	trace_hex(c->span_id, 8, out + 36);
	out[52] = '-';
	/* we speak version 00, which defines only the sampled flag */
	uint8_t f = c->flags & TRACE_FLAG_SAMPLED;
	trace_hex(&f, 1, out + 53);
	INVARIANT(out[TRACE_PARENT_LEN] == '\0');
}

/* key chars after the first: lcalpha / DIGIT / "_" / "-" / "*" / "/" */
static bool key_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
	       c == '*' || c == '/';
}

static bool valid_key(const char *k, size_t n)
{
	const char *at = memchr(k, '@', n);
	if (!at) {
		/* simple-key = lcalpha 0*255( keychar ) */
		if (n < 1 || n > 256 || !(k[0] >= 'a' && k[0] <= 'z'))
			return false;
		for (size_t i = 1; i < n; i++)
			if (!key_char((unsigned char)k[i]))
				return false;
		return true;
	}
	/* tenant-id "@" system-id */
	size_t tn = (size_t)(at - k), sn = n - tn - 1;
	if (tn < 1 || tn > 241 || sn < 1 || sn > 14)
		return false;
	if (!((k[0] >= 'a' && k[0] <= 'z') || (k[0] >= '0' && k[0] <= '9')))
		return false;
	for (size_t i = 1; i < tn; i++)
		if (!key_char((unsigned char)k[i]))
			return false;
	if (!(at[1] >= 'a' && at[1] <= 'z'))
		return false;
	for (size_t i = 1; i < sn; i++)
		if (!key_char((unsigned char)at[1 + i]))
			return false;
	return true;
}

/* value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr;
 * nblk-chr = %x21-2B / %x2D-3C / %x3E-7E */
static bool valid_value(const char *v, size_t n)
{
	if (n < 1 || n > 256)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
			return false;
	}
	return v[n - 1] != ' ';
}

long trace_state_parse(const char *s, size_t n, char *out, size_t cap)
{
	struct { const char *k; size_t kn; } keys[TRACE_STATE_MAX_MEMBERS];
	int members = 0;
	size_t len = 0;
	size_t i = 0;
	while (i <= n) {
		size_t j = i;
		while (j < n && s[j] != ',')
			j++;
		size_t a = i, b = j;
		while (a < b && is_ows(s[a]))
			a++;
		while (b > a && is_ows(s[b - 1]))
			b--;
		if (a < b) { /* empty members are allowed and skipped */
			const char *eq = memchr(s + a, '=', b - a);
			if (!eq)
				return -EINVAL;
			size_t kn = (size_t)(eq - (s + a));
			const char *v = eq + 1;
			size_t vn = (size_t)(s + b - v);
			if (!valid_key(s + a, kn) || !valid_value(v, vn))
				return -EINVAL;
			if (members == TRACE_STATE_MAX_MEMBERS)
				return -EINVAL;
			for (int m = 0; m < members; m++)
				if (keys[m].kn == kn && !memcmp(keys[m].k, s + a, kn))
					return -EINVAL;
			keys[members].k = s + a;
			keys[members].kn = kn;
			members++;
			size_t need = (len ? 1 : 0) + (b - a);
			if (len + need + 1 > cap)
				return -ENOSPC;
			if (len)
				out[len++] = ',';
			memcpy(out + len, s + a, b - a);
			len += b - a;
		}
		i = j + 1;
	}
	if (cap > 0)
		out[len] = '\0';
	return (long)len;
}

/* The context is cleared up to the tracestate's first byte only: the rest
 * is 16 KiB that only a long tracestate uses, and clearing it all costs
 * each short-lived program four page faults. */
static void context_clear(struct trace_context *c)
{
	memset(c, 0, offsetof(struct trace_context, state) + 1);
}

int trace_context_from_env(struct trace_context *c)
{
	context_clear(c);
	const char *tp = getenv("TRACEPARENT");
	if (!tp || !*tp)
		return -ENOENT;
	if (trace_parent_parse(tp, strlen(tp), c) < 0) {
		context_clear(c);
		return -EINVAL;
	}
	const char *ts = getenv("TRACESTATE");
	if (ts && trace_state_parse(ts, strlen(ts), c->state, sizeof c->state) < 0)
		c->state[0] = '\0'; /* dropped on its own; the parent stays */
	return 0;
}

static void random_bytes(uint8_t *b, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = getrandom(b + got, n - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		INVARIANT(r > 0); /* getrandom without GRND_NONBLOCK blocks, never fails */
		got += (size_t)r;
	}
}

void trace_id_random(uint8_t id[16])
{
	do
		random_bytes(id, 16);
	while (all_zero(id, 16));
}

void trace_span_id_random(uint8_t id[8])
{
	do
		random_bytes(id, 8);
	while (all_zero(id, 8));
}

uint64_t trace_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *const kind_names[] = {"unspecified", "internal", "server", "client",
                                         "producer", "consumer"};

int trace_kind_parse(const char *s)
{
	for (int k = TRACE_KIND_INTERNAL; k <= TRACE_KIND_CONSUMER; k++)
		if (!strcmp(s, kind_names[k]))
			return k;
	return -EINVAL;
}

const char *trace_kind_name(enum trace_kind k)
{
	return (unsigned)k <= TRACE_KIND_CONSUMER ? kind_names[k] : "unspecified";
}

/* ---------------------------------------------------------- attributes */

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	INVARIANT(p != NULL);
	return p;
}

static void attr_clear(struct trace_attr *a)
{
	free(a->key);
	if (a->type == TRACE_ATTR_STRING)
		free(a->v.s);
	memset(a, 0, sizeof *a);
}

/* The slot for key: its old one (cleared), a new one, or NULL when full. */
static struct trace_attr *attr_slot(struct trace_attrs *l, const char *key)
{
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->a[i].key, key)) {
			attr_clear(&l->a[i]);
			l->a[i].key = xstrdup(key);
			return &l->a[i];
		}
	if (l->n == TRACE_MAX_ATTRS) {
		l->dropped++;
		return NULL;
	}
	struct trace_attr *a = &l->a[l->n++];
	a->key = xstrdup(key);
	return a;
}

void trace_attr_set_str(struct trace_attrs *l, const char *key, const char *v)
{
	struct trace_attr *a = attr_slot(l, key);
	if (a) {
		a->type = TRACE_ATTR_STRING;
		a->v.s = xstrdup(v);
	}
}

void trace_attr_set_int(struct trace_attrs *l, const char *key, int64_t v)
{
	struct trace_attr *a = attr_slot(l, key);
	if (a) {
		a->type = TRACE_ATTR_INT;
		a->v.i = v;
	}
}

void trace_attr_set_bool(struct trace_attrs *l, const char *key, bool v)
{
	struct trace_attr *a = attr_slot(l, key);
	if (a) {
		a->type = TRACE_ATTR_BOOL;
		a->v.b = v;
	}
}

void trace_attr_set_double(struct trace_attrs *l, const char *key, double v)
{
	struct trace_attr *a = attr_slot(l, key);
	if (a) {
		a->type = TRACE_ATTR_DOUBLE;
		a->v.d = v;
	}
}

const struct trace_attr *trace_attr_get(const struct trace_attrs *l, const char *key)
{
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->a[i].key, key))
			return &l->a[i];
	return NULL;
}

void trace_attrs_free(struct trace_attrs *l)
{
	for (int i = 0; i < l->n; i++)
		attr_clear(&l->a[i]);
	l->n = 0;
	l->dropped = 0;
}

int trace_attr_parse(struct trace_attrs *l, const char *spec, const char **why)
{
	const char *eq = strchr(spec, '=');
	if (!eq) {
		*why = "expected KEY=VALUE or KEY:TYPE=VALUE";
		return -EINVAL;
	}
	const char *colon = memchr(spec, ':', (size_t)(eq - spec));
	size_t kn = (size_t)((colon ? colon : eq) - spec);
	if (kn == 0) {
		*why = "the key is empty";
		return -EINVAL;
	}
	char key[256];
	if (kn >= sizeof key) {
		*why = "the key is longer than 255 bytes";
		return -EINVAL;
	}
	memcpy(key, spec, kn);
	key[kn] = '\0';
	const char *v = eq + 1;
	if (!colon) {
		trace_attr_set_str(l, key, v);
		return 0;
	}
	size_t tn = (size_t)(eq - colon - 1);
	const char *t = colon + 1;
	if (tn == 3 && !memcmp(t, "int", 3)) {
		int64_t i;
		if (json_parse_i64(v, strlen(v), &i) < 0 || !*v) {
			*why = "expected an integer in the int64 range";
			return -EINVAL;
		}
		trace_attr_set_int(l, key, i);
		return 0;
	}
	if (tn == 4 && !memcmp(t, "bool", 4)) {
		if (strcmp(v, "true") && strcmp(v, "false")) {
			*why = "expected true or false";
			return -EINVAL;
		}
		trace_attr_set_bool(l, key, v[0] == 't');
		return 0;
	}
	if (tn == 6 && !memcmp(t, "double", 6)) {
		char *end;
		errno = 0;
		double d = strtod(v, &end);
		if (!*v || *end || errno == ERANGE || !isfinite(d) || v[0] == ' ') {
			*why = "expected a finite number";
			return -EINVAL;
		}
		trace_attr_set_double(l, key, d);
		return 0;
	}
	*why = "the type must be int, bool or double";
	return -EINVAL;
}

/* ------------------------------------------------------------ resource */

/* RFC 7230 tchar: what a Baggage key may hold */
static bool tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* W3C Baggage value octets: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E */
static bool baggage_octet(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\';
}

/* key OWS [ "=" OWS value ] in s[0..n), whitespace already trimmed at
 * both ends; the value is required for the member itself (need_value). */
static bool baggage_pair(const char *s, size_t n, bool need_value)
{
	size_t i = 0;
	while (i < n && tchar((unsigned char)s[i]))
		i++;
	if (i == 0)
		return false;
	size_t k = i;
	while (i < n && is_ows(s[i]))
		i++;
	if (i == n)
		return !need_value && k == n;
	if (s[i++] != '=')
		return false;
	while (i < n && is_ows(s[i]))
		i++;
	for (; i < n; i++)
		if (!baggage_octet((unsigned char)s[i]))
			return false;
	return true;
}

bool trace_baggage_valid(const char *s, size_t n)
{
	if (n == 0 || n > TRACE_BAGGAGE_MAX)
		return false;
	size_t start = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != ',')
			continue;
		/* one list-member: member ; property ; property ... */
		size_t a = start, b = i;
		bool first = true;
		for (size_t j = a; j <= b; j++) {
			if (j < b && s[j] != ';')
				continue;
			size_t x = a, y = j;
			while (x < y && is_ows(s[x]))
				x++;
			while (y > x && is_ows(s[y - 1]))
				y--;
			if (!baggage_pair(s + x, y - x, first))
				return false;
			first = false;
			a = j + 1;
		}
		start = i + 1;
	}
	return true;
}

const char *trace_baggage_from_env(void)
{
	const char *b = getenv("BAGGAGE");
	return b && trace_baggage_valid(b, strlen(b)) ? b : NULL;
}

/* Is s[0..n) UTF-8 with no control characters?  What a decoded baggage
 * value must be to become a span attribute: OTLP's strings are UTF-8,
 * and protobuf decoders refuse a string that is not. */
static bool printable_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
		           : (c & 0xf8) == 0xf0 ? 4 : 0;
		if (len == 0 || i + len > n || (len == 1 && (c < 0x20 || c == 0x7f)) ||
		    (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4))
			return false;
		for (size_t k = 1; k < len; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += len;
	}
	return true;
}

long trace_baggage_members(const char *s, size_t n, char *out, size_t cap,
                           void (*fn)(void *ud, const char *key, const char *value), void *ud)
{
	INVARIANT(trace_baggage_valid(s, n));
	size_t used = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && s[j] != ',')
			j++;
		/* the member is what comes before its first ';' (its properties) */
		size_t a = i, b = i;
		while (b < j && s[b] != ';')
			b++;
		i = j + 1;
		while (a < b && is_ows(s[a]))
			a++;
		while (b > a && is_ows(s[b - 1]))
			b--;
		const char *eq = memchr(s + a, '=', b - a); /* there: the list is valid */
		size_t ke = (size_t)(eq - s), vs = ke + 1;
		while (ke > a && is_ows(s[ke - 1]))
			ke--;
		while (vs < b && is_ows(s[vs]))
			vs++;
		/* key, NUL, value (decoded: never longer than encoded), NUL */
		if (used + (ke - a) + 1 + (b - vs) + 1 > cap)
			return -ENOSPC;
		char *key = out + used;
		memcpy(key, s + a, ke - a);
		key[ke - a] = '\0';
		char *val = key + (ke - a) + 1;
		size_t vl = 0;
		for (size_t k = vs; k < b; k++) {
			int h = s[k] == '%' && k + 2 < b ? hex_val((unsigned char)s[k + 1]) : -1;
			int lo = h >= 0 ? hex_val((unsigned char)s[k + 2]) : -1;
			if (h >= 0 && lo >= 0) {
				val[vl++] = (char)(h << 4 | lo);
				k += 2;
			} else {
				val[vl++] = s[k];
			}
		}
		if (!printable_utf8((const unsigned char *)val, vl)) { /* then as it was sent */
			vl = b - vs;
			memcpy(val, s + vs, vl);
		}
		val[vl] = '\0';
		used += (ke - a) + 1 + vl + 1;
		fn(ud, key, val);
	}
	return (long)used;
}

int trace_kv_list_parse(const char *s, struct trace_attrs *l)
{
	struct trace_attrs tmp = {0};
	size_t n = strlen(s);
	char *key = malloc(n + 1), *val = malloc(n + 1);
	INVARIANT(key && val);
	int rc = 0;
	size_t i = 0;
	while (i <= n && rc == 0) {
		size_t j = i;
		while (j < n && s[j] != ',')
			j++;
		size_t a = i, b = j;
		while (a < b && is_ows(s[a]))
			a++;
		while (b > a && is_ows(s[b - 1]))
			b--;
		i = j + 1;
		if (a == b)
			continue; /* an empty member, as after a trailing comma */
		const char *eq = memchr(s + a, '=', b - a);
		if (!eq) {
			rc = -EINVAL;
			break;
		}
		size_t ke = (size_t)(eq - s), vs = ke + 1;
		while (ke > a && is_ows(s[ke - 1]))
			ke--;
		while (vs < b && is_ows(s[vs]))
			vs++;
		if (ke == a) {
			rc = -EINVAL;
			break;
		}
		size_t kl = 0, vl = 0;
		for (size_t k = a; k < ke; k++) {
			if (!tchar((unsigned char)s[k])) {
				rc = -EINVAL;
				break;
			}
			key[kl++] = s[k];
		}
		for (size_t k = vs; k < b && rc == 0; k++) {
			unsigned char c = (unsigned char)s[k];
			if (!baggage_octet(c)) {
				rc = -EINVAL;
			} else if (c == '%') {
				int h = k + 2 < b ? hex_val((unsigned char)s[k + 1]) : -1;
				int lo = k + 2 < b ? hex_val((unsigned char)s[k + 2]) : -1;
				if (h < 0 || lo < 0)
					rc = -EINVAL;
				else
					val[vl++] = (char)(h << 4 | lo), k += 2;
			} else {
				val[vl++] = (char)c;
			}
		}
		if (rc == 0 && memchr(val, '\0', vl))
			rc = -EINVAL; /* %00 cannot be carried in a C string */
		if (rc == 0) {
			key[kl] = '\0';
			val[vl] = '\0';
			trace_attr_set_str(&tmp, key, val);
		}
	}
	free(key);
	free(val);
	if (rc < 0) {
		trace_attrs_free(&tmp);
		return rc;
	}
	for (int k = 0; k < tmp.n; k++)
		trace_attr_set_str(l, tmp.a[k].key, tmp.a[k].v.s);
	trace_attrs_free(&tmp);
	return 0;
}

int trace_resource_init(struct trace_attrs *res, const char *default_name,
                        const char *service_name, const char *resource_attributes)
{
	memset(res, 0, sizeof *res);
	trace_attr_set_str(res, "service.name", default_name);
	int rc = 0;
	if (resource_attributes && *resource_attributes)
		rc = trace_kv_list_parse(resource_attributes, res);
	if (service_name && *service_name)
		trace_attr_set_str(res, "service.name", service_name);
	return rc;
}

int trace_resource_from_env(struct trace_attrs *res, const char *default_name)
{
	return trace_resource_init(res, default_name, getenv("OTEL_SERVICE_NAME"),
	                           getenv("OTEL_RESOURCE_ATTRIBUTES"));
}

/* ------------------------------------------------------------- sampling */

int trace_sampler_init(struct trace_sampler *s, const char *name, const char *arg)
{
	*s = (struct trace_sampler){TRACE_SAMPLE_ALWAYS_ON, true, 1.0};
	if (!name || !*name)
		return 0;
	struct trace_sampler t = {TRACE_SAMPLE_ALWAYS_ON, false, 1.0};
	const char *base = name;
	if (!strncmp(name, "parentbased_", 12)) {
		t.parent_based = true;
		base = name + 12;
	}
	if (!strcmp(base, "always_on")) {
		t.root = TRACE_SAMPLE_ALWAYS_ON;
	} else if (!strcmp(base, "always_off")) {
		t.root = TRACE_SAMPLE_ALWAYS_OFF;
	} else if (!strcmp(base, "traceidratio")) {
		t.root = TRACE_SAMPLE_RATIO;
		if (arg && *arg) {
			char *end;
			errno = 0;
			double r = strtod(arg, &end);
			if (*end || errno || !(r >= 0.0 && r <= 1.0))
				return -EINVAL;
			t.ratio = r;
		}
	} else {
		return -EINVAL;
	}
	*s = t;
	return 0;
}

int trace_sampler_from_env(struct trace_sampler *s)
{
	return trace_sampler_init(s, getenv("OTEL_TRACES_SAMPLER"), getenv("OTEL_TRACES_SAMPLER_ARG"));
}

bool trace_sample(const struct trace_sampler *s, const struct trace_context *parent,
                  const uint8_t trace_id[16])
{
	if (parent && s->parent_based)
		return parent->flags & TRACE_FLAG_SAMPLED;
	switch (s->root) {
	case TRACE_SAMPLE_ALWAYS_ON:
		return true;
	case TRACE_SAMPLE_ALWAYS_OFF:
		return false;
	case TRACE_SAMPLE_RATIO:
		break;
	}
	uint64_t r = 0;
	for (int i = 9; i < 16; i++)
		r = r << 8 | trace_id[i];
	/* r is uniform in [0, 2^56); compared as integers, since 2^56 - 1
	 * does not survive a trip through double */
	uint64_t threshold = (uint64_t)(s->ratio * 72057594037927936.0);
	return r < threshold;
}

/* ---------------------------------------------------------------- spans */

void trace_span_init(struct trace_span *sp, const char *name, enum trace_kind kind,
                     const struct trace_context *parent)
{
	/* Field by field, not memset: the struct is 68 KiB, mostly room for
	 * events and attributes that a span seldom has, and clearing it whole
	 * faults in 17 pages, a good part of what `dsys-trace exec` adds on a
	 * machine where a page fault is dear.  Only [0, n) of the lists and
	 * the tracestate up to its NUL are ever read. */
	memset(&sp->ctx, 0, offsetof(struct trace_context, state) + 1);
	memset(sp->parent_span_id, 0, sizeof sp->parent_span_id);
	sp->has_parent = false;
	sp->end_ns = 0;
	sp->attrs.n = 0;
	sp->attrs.dropped = 0;
	sp->n_events = 0;
	sp->dropped_events = 0;
	sp->status = TRACE_STATUS_UNSET;
	sp->status_message = NULL;
	if (parent) {
		memcpy(sp->ctx.trace_id, parent->trace_id, 16);
		memcpy(sp->parent_span_id, parent->span_id, 8);
		sp->has_parent = true;
		sp->ctx.flags = parent->flags & TRACE_FLAG_SAMPLED;
		memcpy(sp->ctx.state, parent->state, strlen(parent->state) + 1);
	} else {
		trace_id_random(sp->ctx.trace_id);
		sp->ctx.flags = TRACE_FLAG_SAMPLED;
	}
	trace_span_id_random(sp->ctx.span_id);
	sp->name = xstrdup(name);
	sp->kind = kind;
	sp->start_ns = trace_now_ns();
}

void trace_span_event(struct trace_span *sp, const char *name, uint64_t time_ns,
                      struct trace_attrs *attrs)
{
	if (sp->n_events == TRACE_MAX_EVENTS) {
		sp->dropped_events++;
		if (attrs)
			trace_attrs_free(attrs);
		return;
	}
	struct trace_event *e = &sp->events[sp->n_events++];
	memset(e, 0, sizeof *e);
	e->name = xstrdup(name);
	e->time_ns = time_ns ? time_ns : trace_now_ns();
	if (attrs) {
		e->attrs = *attrs; /* moved: the strings now belong to the event */
		memset(attrs, 0, sizeof *attrs);
	}
}

void trace_span_end(struct trace_span *sp, enum trace_status st, const char *message)
{
	if (!sp->end_ns)
		sp->end_ns = trace_now_ns();
	sp->status = st;
	free(sp->status_message);
	sp->status_message = message && *message ? xstrdup(message) : NULL;
}

void trace_span_free(struct trace_span *sp)
{
	free(sp->name);
	free(sp->status_message);
	trace_attrs_free(&sp->attrs);
	for (int i = 0; i < sp->n_events; i++) {
		free(sp->events[i].name);
		trace_attrs_free(&sp->events[i].attrs);
	}
	sp->name = sp->status_message = NULL;
	sp->n_events = 0;
}

/* --------------------------------------------------------------- output */

/* proto3 JSON writes 64-bit integers as strings */
static void json_kv_u64str(struct json_writer *w, const char *key, uint64_t v)
{
	char tmp[24];
	snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
	json_kv_str(w, key, tmp);
}

void trace_attrs_json(struct json_writer *w, const struct trace_attrs *l)
{
	json_arr_begin(w);
	for (int i = 0; i < l->n; i++) {
		const struct trace_attr *a = &l->a[i];
		json_obj_begin(w);
		json_kv_str(w, "key", a->key);
		json_key(w, "value");
		json_obj_begin(w);
		char tmp[24];
		switch (a->type) {
		case TRACE_ATTR_STRING:
			json_kv_str(w, "stringValue", a->v.s);
			break;
		case TRACE_ATTR_INT:
			snprintf(tmp, sizeof tmp, "%lld", (long long)a->v.i);
			json_kv_str(w, "intValue", tmp);
			break;
		case TRACE_ATTR_BOOL:
			json_kv_bool(w, "boolValue", a->v.b);
			break;
		case TRACE_ATTR_DOUBLE:
			/* proto3 JSON spells the non-finite doubles as strings */
			if (isnan(a->v.d))
				json_kv_str(w, "doubleValue", "NaN");
			else if (isinf(a->v.d))
				json_kv_str(w, "doubleValue", a->v.d > 0 ? "Infinity" : "-Infinity");
			else
				json_kv_double(w, "doubleValue", a->v.d);
			break;
		}
		json_obj_end(w);
		json_obj_end(w);
	}
	json_arr_end(w);
}

static int attr_from_json(const json_value *item, struct trace_attrs *l)
{
	const char *key = json_get_str(item, "key");
	const json_value *v = json_get(item, "value");
	if (!key || !v)
		return -EINVAL;
	const char *s;
	const json_value *x;
	if ((s = json_get_str(v, "stringValue"))) {
		trace_attr_set_str(l, key, s);
	} else if ((s = json_get_str(v, "intValue"))) {
		int64_t i;
		if (json_parse_i64(s, strlen(s), &i) < 0)
			return -EINVAL;
		trace_attr_set_int(l, key, i);
	} else if ((x = json_get(v, "boolValue"))) {
		if (!cJSON_IsBool(x))
			return -EINVAL;
		trace_attr_set_bool(l, key, cJSON_IsTrue(x));
	} else if ((x = json_get(v, "doubleValue"))) {
		if (cJSON_IsNumber(x))
			trace_attr_set_double(l, key, x->valuedouble);
		else if (cJSON_IsString(x) && !strcmp(x->valuestring, "NaN"))
			trace_attr_set_double(l, key, NAN);
		else if (cJSON_IsString(x) && !strcmp(x->valuestring, "Infinity"))
			trace_attr_set_double(l, key, INFINITY);
		else if (cJSON_IsString(x) && !strcmp(x->valuestring, "-Infinity"))
			trace_attr_set_double(l, key, -INFINITY);
		else
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	return 0;
}

int trace_attrs_from_json(const json_value *arr, struct trace_attrs *l)
{
	if (!arr || !cJSON_IsArray(arr))
		return -EINVAL;
	const json_value *item;
	cJSON_ArrayForEach(item, arr)
		if (attr_from_json(item, l) < 0)
			return -EINVAL;
	return 0;
}

void trace_span_json(const struct trace_span *sp, const struct trace_attrs *resource,
                     struct buf *out)
{
	trace_span_json_scoped(sp, resource, "dsys", DSYS_VERSION, out);
}

/* {"resource":{"attributes":[..]},"scope":{..} -- the head both signals share */
static void json_resource_scope(struct json_writer *w, const struct trace_attrs *resource,
                                const char *scopes_key, const char *scope_name,
                                const char *scope_version)
{
	json_key(w, "resource");
	json_obj_begin(w);
	json_key(w, "attributes");
	trace_attrs_json(w, resource);
	if (resource->dropped)
		json_kv_u64(w, "droppedAttributesCount", resource->dropped);
	json_obj_end(w);
	json_key(w, scopes_key);
	json_arr_begin(w);
	json_obj_begin(w);
	json_key(w, "scope");
	json_obj_begin(w);
	if (scope_name)
		json_kv_str(w, "name", scope_name);
	if (scope_version)
		json_kv_str(w, "version", scope_version);
	json_obj_end(w);
}

void trace_span_json_scoped(const struct trace_span *sp, const struct trace_attrs *resource,
                            const char *scope_name, const char *scope_version, struct buf *out)
{
	struct json_writer w;
	char hex[33];
	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_key(&w, "resourceSpans");
	json_arr_begin(&w);
	json_obj_begin(&w);
	json_resource_scope(&w, resource, "scopeSpans", scope_name, scope_version);
	json_key(&w, "spans");
	json_arr_begin(&w);

	json_obj_begin(&w);
	trace_hex(sp->ctx.trace_id, 16, hex);
	json_kv_str(&w, "traceId", hex);
	trace_hex(sp->ctx.span_id, 8, hex);
	json_kv_str(&w, "spanId", hex);
	if (sp->ctx.state[0])
		json_kv_str(&w, "traceState", sp->ctx.state);
	if (sp->has_parent) {
		trace_hex(sp->parent_span_id, 8, hex);
		json_kv_str(&w, "parentSpanId", hex);
	}
	json_kv_i64(&w, "flags", sp->ctx.flags & TRACE_FLAG_SAMPLED);
	json_kv_str(&w, "name", sp->name ? sp->name : "");
	json_kv_i64(&w, "kind", sp->kind);
	json_kv_u64str(&w, "startTimeUnixNano", sp->start_ns);
	json_kv_u64str(&w, "endTimeUnixNano", sp->end_ns);
	json_key(&w, "attributes");
	trace_attrs_json(&w, &sp->attrs);
	if (sp->attrs.dropped)
		json_kv_u64(&w, "droppedAttributesCount", sp->attrs.dropped);
	json_key(&w, "events");
	json_arr_begin(&w);
	for (int i = 0; i < sp->n_events; i++) {
		const struct trace_event *e = &sp->events[i];
		json_obj_begin(&w);
		json_kv_u64str(&w, "timeUnixNano", e->time_ns);
		json_kv_str(&w, "name", e->name);
		json_key(&w, "attributes");
		trace_attrs_json(&w, &e->attrs);
		if (e->attrs.dropped)
			json_kv_u64(&w, "droppedAttributesCount", e->attrs.dropped);
		json_obj_end(&w);
	}
	json_arr_end(&w);
	if (sp->dropped_events)
		json_kv_u64(&w, "droppedEventsCount", sp->dropped_events);
	json_key(&w, "status");
	json_obj_begin(&w);
	if (sp->status_message)
		json_kv_str(&w, "message", sp->status_message);
	json_kv_i64(&w, "code", sp->status);
	json_obj_end(&w);
	json_obj_end(&w);

	json_arr_end(&w);
	json_obj_end(&w);
	json_arr_end(&w);
	json_obj_end(&w);
	json_arr_end(&w);
	json_obj_end(&w);
	INVARIANT(w.depth == 0);
}

int trace_export_file(const char *path, const struct buf *line)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	size_t n = line->len + 1;
	char *tmp = malloc(n);
	INVARIANT(tmp != NULL);
	if (line->len)
		memcpy(tmp, line->data, line->len);
	tmp[line->len] = '\n';
	ssize_t w;
	do
		w = write(fd, tmp, n);
	while (w < 0 && errno == EINTR);
	int rc = w < 0 ? -errno : (size_t)w != n ? -EIO : 0;
	free(tmp);
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	return rc;
}

/* ----------------------------------------------------------------- logs */

int trace_severity_parse(const char *s)
{
	static const struct { const char *name; int n; } names[] = {
		{"trace", TRACE_SEV_TRACE}, {"debug", TRACE_SEV_DEBUG}, {"info", TRACE_SEV_INFO},
		{"notice", TRACE_SEV_INFO + 1}, {"warn", TRACE_SEV_WARN}, {"warning", TRACE_SEV_WARN},
		{"error", TRACE_SEV_ERROR}, {"err", TRACE_SEV_ERROR}, {"critical", TRACE_SEV_FATAL},
		{"crit", TRACE_SEV_FATAL}, {"fatal", TRACE_SEV_FATAL},
	};
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcasecmp(s, names[i].name))
			return names[i].n;
	return -EINVAL;
}

void trace_log_set(char **field, const char *v)
{
	free(*field);
	*field = v ? xstrdup(v) : NULL;
}

void trace_log_free(struct trace_log *l)
{
	free(l->severity_text);
	free(l->body);
	l->severity_text = l->body = NULL;
	trace_attrs_free(&l->attrs);
}

void trace_log_json(const struct trace_log *l, const struct trace_attrs *resource,
                    const char *scope_name, const char *scope_version, struct buf *out)
{
	struct json_writer w;
	char hex[33];
	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_key(&w, "resourceLogs");
	json_arr_begin(&w);
	json_obj_begin(&w);
	json_resource_scope(&w, resource, "scopeLogs", scope_name, scope_version);
	json_key(&w, "logRecords");
	json_arr_begin(&w);
	json_obj_begin(&w);
	if (l->time_ns)
		json_kv_u64str(&w, "timeUnixNano", l->time_ns);
	if (l->observed_ns)
		json_kv_u64str(&w, "observedTimeUnixNano", l->observed_ns);
	if (l->severity)
		json_kv_i64(&w, "severityNumber", l->severity);
	if (l->severity_text)
		json_kv_str(&w, "severityText", l->severity_text);
	if (l->body) {
		json_key(&w, "body");
		json_obj_begin(&w);
		json_kv_str(&w, "stringValue", l->body);
		json_obj_end(&w);
	}
	json_key(&w, "attributes");
	trace_attrs_json(&w, &l->attrs);
	if (l->attrs.dropped)
		json_kv_u64(&w, "droppedAttributesCount", l->attrs.dropped);
	if (l->has_span) {
		json_kv_i64(&w, "flags", l->flags);
		trace_hex(l->trace_id, 16, hex);
		json_kv_str(&w, "traceId", hex);
		trace_hex(l->span_id, 8, hex);
		json_kv_str(&w, "spanId", hex);
	}
	json_obj_end(&w);
	json_arr_end(&w);
	json_obj_end(&w);
	json_arr_end(&w);
	json_obj_end(&w);
	json_arr_end(&w);
	json_obj_end(&w);
	INVARIANT(w.depth == 0);
}
