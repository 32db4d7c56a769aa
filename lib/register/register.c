/*
 * register/register.c -- instance names, the endpoint-manager value, and
 * the file: registry (see register.h for the layout and its reasons).
 *
 * The value parser is the one piece fed by the outside world (any process
 * may write under the registry), so it checks every field's type and size
 * and refuses the value whole rather than guess; a refused file or key is
 * left out of lists, never a crash.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/invariant.h"
#include "base/json.h"
#include "base/parse.h"
#include "io/uring.h"
#include "register/register.h"

const char *reg_status_name(enum reg_status s)
{
	switch (s) {
	case REG_PASSING: return "passing";
	case REG_CRITICAL: return "critical";
	default: return "starting";
	}
}

uint64_t reg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int reg_name_check(const char *s, const char **why)
{
	size_t n = strlen(s);
	if (n == 0)
		return *why = "is empty", -1;
	if (n > REG_MAX_NAME)
		return *why = "is longer than 128 bytes", -1;
	if (s[0] == '.')
		return *why = "starts with '.'", -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '/')
			return *why = "contains '/'", -1;
		if (c <= 0x20 || c >= 0x7f)
			return *why = "contains a space, a control character or a byte outside ASCII", -1;
	}
	return 0;
}

int reg_addr_check(const char *s, const char **why)
{
	char host[256];
	uint16_t port;
	if (strlen(s) > REG_MAX_ADDR)
		return *why = "is too long", -1;
	if (s[0] == ':' || parse_hostport(s, host, sizeof host, &port) < 0 || !host[0])
		return *why = "expected HOST:PORT", -1;
	if (port == 0)
		return *why = "port 0 is not an address to reach", -1;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == '/' || (unsigned char)*p >= 0x7f)
			return *why = "expected HOST:PORT", -1;
	return 0;
}

int reg_meta_add(char *meta, size_t size, const char *kv, const char **why)
{
	const char *eq = strchr(kv, '=');
	if (!eq)
		return *why = "expected KEY=VALUE", -1;
	if (eq == kv)
		return *why = "the key is empty", -1;
	struct buf b = BUF_INIT;
	size_t len = strlen(meta);
	if (len < 2)
		buf_puts(&b, "{");
	else
		buf_append(&b, meta, len - 1);   /* without the '}' */
	if (b.len > 1)
		buf_putc(&b, ',');
	json_escape(&b, kv, (size_t)(eq - kv));
	buf_putc(&b, ':');
	json_escape(&b, eq + 1, strlen(eq + 1));
	buf_putc(&b, '}');
	int rc = 0;
	if (b.len >= size) {
		*why = "the meta data is longer than 2048 bytes";
		rc = -1;
	} else {
		memcpy(meta, b.data, b.len + 1);
	}
	buf_free(&b);
	return rc;
}

/* reg_meta_get without cJSON where that is sure to answer the same: every
 * key plain (an escaped one might spell key), the first member named key
 * (cJSON's pick) a plain string.  Anything else is left to cJSON. */
static bool plain(const struct json_token *t);

struct meta_find { const char *key; size_t key_len; struct json_token v; bool found, doubt; };

static int meta_find_cb(void *ctx, const struct json_token *k, const struct json_token *v)
{
	struct meta_find *f = ctx;
	if (!plain(k))
		f->doubt = true;
	else if (!f->found && k->len == f->key_len && !memcmp(k->text, f->key, k->len)) {
		f->v = *v;
		f->found = true;
	}
	return 0;
}

static bool meta_get_fast(const char *meta, const char *key, char *out, size_t size)
{
	size_t len = strlen(meta);
	struct meta_find f = {key, strlen(key), {0}, false, false};
	long end = json_scan_object(meta, len, meta_find_cb, &f);
	if (end < 0 || f.doubt)
		return false;
	for (size_t i = (size_t)end; i < len; i++)
		if (!strchr(" \t\r\n", meta[i]))
			return false;
	if (!f.found)
		return true;   /* out is "" */
	if (f.v.kind != JSON_KIND_STRING || !plain(&f.v))
		return false;
	size_t n = f.v.len < size - 1 ? f.v.len : size - 1;
	memcpy(out, f.v.text, n);
	out[n] = '\0';
	return true;
}

const char *reg_meta_get(const char *meta, const char *key, char *out, size_t size)
{
	out[0] = '\0';
	if (size == 0)
		return out;
	if (meta_get_fast(meta, key, out, size))
		return out;
	out[0] = '\0';
	json_value *v = json_parse(meta, strlen(meta), NULL);
	const cJSON *m = v ? cJSON_GetObjectItemCaseSensitive(v, key) : NULL;
	if (cJSON_IsString(m)) {
		snprintf(out, size, "%s", m->valuestring);
	} else if (m) {
		char *t = cJSON_PrintUnformatted(m);
		if (t)
			snprintf(out, size, "%s", t);
		cJSON_free(t);
	}
	json_free(v);
	return out;
}

void reg_value_format(struct buf *out, const struct reg_instance *in)
{
	struct json_writer w;
	json_writer_init(&w, out);
	json_obj_begin(&w);
	json_kv_i64(&w, "Op", 0);
	json_kv_str(&w, "Addr", in->addr);
	json_key(&w, "Metadata");
	json_obj_begin(&w);
	json_kv_str(&w, "service", in->service);
	json_kv_str(&w, "id", in->id);
	json_kv_str(&w, "status", reg_status_name(in->status));
	json_kv_u64(&w, "since_ms", in->since_ms);
	json_key(&w, "meta");
	json_raw(&w, in->meta[0] ? in->meta : "{}", in->meta[0] ? strlen(in->meta) : 2);
	if (in->expires_ms)
		json_kv_u64(&w, "expires_ms", in->expires_ms);
	json_obj_end(&w);
	json_obj_end(&w);
}

static int get_ms(const cJSON *o, const char *key, uint64_t *out, bool required)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (!v)
		return required ? -EINVAL : (*out = 0, 0);
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740991.0 ||
	    v->valuedouble != (double)(uint64_t)v->valuedouble)
		return -EINVAL;
	*out = (uint64_t)v->valuedouble;
	return 0;
}

/* ---- the fast path of reg_value_parse
 *
 * cJSON builds a tree (a malloc per member), reads numbers through strtod
 * and prints meta back out: most of the CPU of reading a record, and
 * render reads a thousand.  Records as add (and etcd's endpoint manager)
 * write them are plain: unescaped keys and strings, integer numbers, meta
 * an object of plain strings.  Those are read here with the allocation-free
 * scanner of base/json; anything else (an escape, a control byte, a
 * duplicate member, a number with a sign, fraction or exponent, a meta
 * value that is not a string, any doubt) returns 1 and is left to the
 * cJSON reading below, which has the last word on what a value means.  So
 * the fast path gives the same answer as cJSON or none, which
 * tests/unit/test_register.c checks on many mutated records. */

struct fast_top { struct json_token op, addr, md; bool has_op, has_addr, has_md, doubt; };
struct fast_md { struct json_token status, since, expires, meta; bool has[4], doubt; };

/* A key or string token read as it is: no escape, no control byte (cJSON
 * would cut at a NUL and print a control byte back escaped).  The scanner
 * refuses a raw control byte in a string, so only an escape can make one:
 * no loop over the text. */
static bool plain(const struct json_token *t)
{
	return !t->escaped;
}

/* Is the (plain) key token the name s of n bytes?  The names are known
 * at compile time: the length first, no strlen per call. */
#define KEY_IS(k, s) ((k)->len == sizeof(s) - 1 && !memcmp((k)->text, s, sizeof(s) - 1))

static int fast_top_cb(void *ctx, const struct json_token *k, const struct json_token *v)
{
	struct fast_top *f = ctx;
	struct json_token *slot = NULL;
	bool *has = NULL;
	if (!plain(k))
		f->doubt = true;
	else if (KEY_IS(k, "Op"))
		slot = &f->op, has = &f->has_op;
	else if (KEY_IS(k, "Addr"))
		slot = &f->addr, has = &f->has_addr;
	else if (KEY_IS(k, "Metadata"))
		slot = &f->md, has = &f->has_md;
	if (slot) {
		f->doubt |= *has;   /* a duplicate: cJSON takes the first, leave it to cJSON */
		*slot = *v;
		*has = true;
	}
	return 0;
}

static int fast_md_cb(void *ctx, const struct json_token *k, const struct json_token *v)
{
	struct fast_md *f = ctx;
	int i;
	if (!plain(k)) {
		f->doubt = true;
		return 0;
	}
	if (KEY_IS(k, "status"))
		i = 0;
	else if (KEY_IS(k, "since_ms"))
		i = 1;
	else if (KEY_IS(k, "expires_ms"))
		i = 2;
	else if (KEY_IS(k, "meta"))
		i = 3;
	else
		return 0;   /* service, id and foreign fields: not read */
	struct json_token *slots[] = {&f->status, &f->since, &f->expires, &f->meta};
	f->doubt |= f->has[i];
	*slots[i] = *v;
	f->has[i] = true;
	return 0;
}

/* Printing meta as cJSON_PrintUnformatted does for plain strings:
 * {"k":"v",...} with nothing escaped, since nothing needs it. */
struct fast_meta { char *out; size_t len, size; bool doubt; };

static int fast_meta_cb(void *ctx, const struct json_token *k, const struct json_token *v)
{
	struct fast_meta *f = ctx;
	if (!plain(k) || v->kind != JSON_KIND_STRING || !plain(v) ||
	    f->len + k->len + v->len + 7 > f->size) {
		f->doubt = true;
		return -1;
	}
	char *o = f->out + f->len;
	if (f->len > 1)
		*o++ = ',';
	*o++ = '"';
	memcpy(o, k->text, k->len);
	o += k->len;
	memcpy(o, "\":\"", 3);
	o += 3;
	memcpy(o, v->text, v->len);
	o += v->len;
	*o++ = '"';
	f->len = (size_t)(o - f->out);
	return 0;
}

/* A number of milliseconds: plain digits, at most 2^53 - 1 (what cJSON's
 * double holds exactly, as get_ms requires). */
static bool fast_ms(const struct json_token *t, uint64_t *out)
{
	if (t->kind != JSON_KIND_NUMBER || t->len == 0 || t->len > 16)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < t->len; i++) {
		if (t->text[i] < '0' || t->text[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(t->text[i] - '0');
	}
	if (v > 9007199254740991ull || (t->len > 1 && t->text[0] == '0'))
		return false;
	*out = v;
	return true;
}

static inline __attribute__((always_inline)) size_t skip_ws(const char *t, size_t len, size_t i)
{
	while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
		i++;
	return i;
}

/* After whitespace from i, the n bytes of s: the index after them, or 0.
 * Inlined, so each EXPECT's memcmp of a literal is a compare or two, not
 * a call: a record takes some forty of them. */
static inline __attribute__((always_inline)) size_t expect(const char *t, size_t len, size_t i, const char *s, size_t n)
{
	i = skip_ws(t, len, i);
	return len - i >= n && !memcmp(t + i, s, n) ? i + n : 0;
}
#define EXPECT(i, s) ((i) = expect(text, len, (i), s, sizeof(s) - 1))

/* A plain string at t[i] (after whitespace): '"', bytes that are no
 * escape, no control byte and no byte past ASCII, '"'.  Its token and
 * the index after it, or 0: anything else is for the generic scan. */
static size_t plain_string(const char *t, size_t len, size_t i, struct json_token *tok)
{
	i = skip_ws(t, len, i);
	if (i >= len || t[i] != '"')
		return 0;
	size_t s = ++i;
	for (; i < len; i++) {
		unsigned char c = (unsigned char)t[i];
		if (c == '"') {
			*tok = (struct json_token){JSON_KIND_STRING, t + s, i - s, false};
			return i + 1;
		}
		if (c < 0x20 || c == '\\' || c >= 0x80)
			return 0;
	}
	return 0;
}

/* Plain digits at t[i] (after whitespace), no leading zero: a number
 * token and the index after it, or 0.  What follows is the caller's to
 * check (a '.', an 'e' or a '-' is then off the layout). */
static size_t plain_digits(const char *t, size_t len, size_t i, struct json_token *tok)
{
	i = skip_ws(t, len, i);
	size_t s = i;
	while (i < len && t[i] >= '0' && t[i] <= '9')
		i++;
	if (i == s || (t[s] == '0' && i - s > 1))
		return 0;
	*tok = (struct json_token){JSON_KIND_NUMBER, t + s, i - s, false};
	return i;
}

/* Metadata at text[i] in the order reg_value_format writes it, compact
 * or spaced:
 *   {"service":"S","id":"I","status":"X","since_ms":N,"meta":{...}
 *    [,"expires_ms":N]}
 * read straight through, into md as fast_md_cb fills it: the generic
 * scan pays a callback, a key match and a dispatch per member, and this
 * is most of a record.  The index after the closing brace, or 0 at the
 * first thing off the layout (md then holds half a reading: the caller
 * clears it and scans generically). */
static size_t canonical_md(const char *text, size_t len, size_t i, struct fast_md *md)
{
	struct json_token skip;
	if (!EXPECT(i, "{") || !EXPECT(i, "\"service\"") || !EXPECT(i, ":") ||
	    !(i = plain_string(text, len, i, &skip)) || !EXPECT(i, ",") || !EXPECT(i, "\"id\"") ||
	    !EXPECT(i, ":") || !(i = plain_string(text, len, i, &skip)) || !EXPECT(i, ",") ||
	    !EXPECT(i, "\"status\"") || !EXPECT(i, ":") || !(i = plain_string(text, len, i, &md->status)) ||
	    !EXPECT(i, ",") || !EXPECT(i, "\"since_ms\"") || !EXPECT(i, ":") ||
	    !(i = plain_digits(text, len, i, &md->since)) || !EXPECT(i, ",") || !EXPECT(i, "\"meta\"") ||
	    !EXPECT(i, ":"))
		return 0;
	i = skip_ws(text, len, i);
	if (i >= len || text[i] != '{')
		return 0;
	long e = json_scan_value(text + i, len - i, &md->meta);
	if (e < 0)
		return 0;
	i += (size_t)e;
	md->has[0] = md->has[1] = md->has[3] = true;
	size_t j = i;
	if (EXPECT(j, ",")) {
		if (!EXPECT(j, "\"expires_ms\"") || !EXPECT(j, ":") || !(j = plain_digits(text, len, j, &md->expires)))
			return 0;
		md->has[2] = true;
		i = j;
	}
	return EXPECT(i, "}");
}

/* The layout every writer of records uses, reg_value_format's own and
 * etcd's endpoint manager's, compact or spaced:
 *   {"Op":0,"Addr":"HOST:PORT","Metadata":{...}}
 * read in one pass: the generic reading below scans the whole record
 * once to find its members and Metadata a second time (meta a third),
 * and that is a third of render's instructions.  Fills *addr and *md
 * (md->doubt as the generic reading would set it) and returns true, or
 * false at the first thing off that layout, for the generic reading to
 * decide (md then holds nothing it needs). */
static bool canonical(const char *text, size_t len, struct json_token *addr, struct fast_md *md)
{
	size_t i = 0;
	if (!EXPECT(i, "{") || !EXPECT(i, "\"Op\"") || !EXPECT(i, ":") || !EXPECT(i, "0") ||
	    !EXPECT(i, ",") || !EXPECT(i, "\"Addr\"") || !EXPECT(i, ":") || !EXPECT(i, "\""))
		return false;
	size_t a = i;
	while (i < len && text[i] != '"') {   /* bytes an address may hold, no escape */
		unsigned char c = (unsigned char)text[i];
		if (c <= 0x20 || c >= 0x7f || c == '\\')
			return false;
		i++;
	}
	if (i >= len || i - a > REG_MAX_ADDR)
		return false;
	*addr = (struct json_token){JSON_KIND_STRING, text + a, i - a, false};
	i++;
	if (!EXPECT(i, ",") || !EXPECT(i, "\"Metadata\"") || !EXPECT(i, ":"))
		return false;
	size_t m = canonical_md(text, len, i, md);
	if (m) {
		i = m;
	} else {
		memset(md, 0, sizeof *md);
		i = skip_ws(text, len, i);
		if (i >= len || text[i] != '{')
			return false;
		long end = json_scan_object(text + i, len - i, fast_md_cb, md);
		if (end < 0)
			return false;
		i += (size_t)end;
	}
	if (!EXPECT(i, "}"))
		return false;
	return skip_ws(text, len, i) == len;
}

/* 0 or -EINVAL as reg_value_parse answers, or 1: not sure, ask cJSON.
 * in's service and id are already in place. */
static int value_parse_fast(const char *text, size_t len, struct reg_instance *in)
{
	if (memchr(text, '\0', len))
		return 1;
	struct json_token addr;
	struct fast_md md = {0};
	if (canonical(text, len, &addr, &md)) {
		if (md.doubt)
			return 1;
	} else {
		memset(&md, 0, sizeof md);
		struct fast_top top = {0};
		long end = json_scan_object(text, len, fast_top_cb, &top);
		if (end < 0 || top.doubt)
			return 1;
		for (size_t i = (size_t)end; i < len; i++)
			if (!strchr(" \t\r\n", text[i]))
				return 1;
		if ((top.has_op && !(top.op.kind == JSON_KIND_NUMBER && top.op.len == 1 && top.op.text[0] == '0')) ||
		    !top.has_addr || top.addr.kind != JSON_KIND_STRING || top.addr.escaped ||
		    top.addr.len > REG_MAX_ADDR)
			return 1;
		for (size_t i = 0; i < top.addr.len; i++)
			if ((unsigned char)top.addr.text[i] <= 0x20 || (unsigned char)top.addr.text[i] >= 0x7f)
				return 1;
		if (top.has_md && top.md.kind == JSON_KIND_OBJECT &&
		    (json_scan_object(top.md.text, top.md.len, fast_md_cb, &md) < 0 || md.doubt))
			return 1;
		addr = top.addr;
	}
	enum reg_status status = REG_PASSING;
	uint64_t since = 0, expires = 0;
	if (md.has[0]) {
		const struct json_token *t = &md.status;
		if (t->kind != JSON_KIND_STRING || t->escaped)
			return 1;
		if (t->len == 7 && !memcmp(t->text, "passing", 7))
			status = REG_PASSING;
		else if (t->len == 8 && !memcmp(t->text, "critical", 8))
			status = REG_CRITICAL;
		else if (t->len == 8 && !memcmp(t->text, "starting", 8))
			status = REG_STARTING;
		else
			return 1;
	}
	if ((md.has[1] && !fast_ms(&md.since, &since)) || (md.has[2] && !fast_ms(&md.expires, &expires)))
		return 1;
	char meta[REG_MAX_META + 1];   /* not = "{}": that zeroes all 2 kB */
	memcpy(meta, "{}", 3);
	if (md.has[3]) {
		if (md.meta.kind != JSON_KIND_OBJECT)
			return 1;
		struct fast_meta fm = {meta, 1, REG_MAX_META, false};
		if (json_scan_object(md.meta.text, md.meta.len, fast_meta_cb, &fm) < 0 || fm.doubt)
			return 1;
		meta[fm.len++] = '}';
		meta[fm.len] = '\0';
	}
	/* sure now: fill in as the cJSON reading does (the address as a
	 * string: not the whole 301-byte field zeroed, which in a fresh
	 * array of a thousand is 300 kB of memory written for nothing) */
	memcpy(in->addr, addr.text, addr.len);
	in->addr[addr.len] = '\0';
	strcpy(in->meta, meta);
	in->status = status;
	in->since_ms = since;
	in->expires_ms = expires;
	return 0;
}

int reg_value_parse(const char *text, size_t len, struct reg_instance *in)
{
	int fast = value_parse_fast(text, len, in);
	if (fast <= 0)
		return fast;
	return reg_value_parse_cjson(text, len, in);
}

int reg_value_parse_cjson(const char *text, size_t len, struct reg_instance *in)
{
	char service[sizeof in->service], id[sizeof in->id];
	memcpy(service, in->service, sizeof service);
	memcpy(id, in->id, sizeof id);
	json_value *v = json_parse(text, len, NULL);
	int rc = -EINVAL;
	if (!v || !cJSON_IsObject(v))
		goto out;
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(v, "Op");
	const cJSON *addr = cJSON_GetObjectItemCaseSensitive(v, "Addr");
	const cJSON *md = cJSON_GetObjectItemCaseSensitive(v, "Metadata");
	if ((op && (!cJSON_IsNumber(op) || op->valuedouble != 0)) || !cJSON_IsString(addr) ||
	    strlen(addr->valuestring) > REG_MAX_ADDR)
		goto out;
	for (const char *p = addr->valuestring; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			goto out;   /* an address is printable ASCII: it is printed back as it is */
	memset(in, 0, sizeof *in);
	memcpy(in->service, service, sizeof service);
	memcpy(in->id, id, sizeof id);
	strcpy(in->addr, addr->valuestring);
	strcpy(in->meta, "{}");
	in->status = REG_PASSING;   /* written by another endpoint manager: no health known */
	if (md && cJSON_IsObject(md)) {
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(md, "status");
		if (st) {
			if (!cJSON_IsString(st))
				goto out;
			if (!strcmp(st->valuestring, "passing"))
				in->status = REG_PASSING;
			else if (!strcmp(st->valuestring, "critical"))
				in->status = REG_CRITICAL;
			else if (!strcmp(st->valuestring, "starting"))
				in->status = REG_STARTING;
			else
				goto out;
		}
		if (get_ms(md, "since_ms", &in->since_ms, false) < 0 ||
		    get_ms(md, "expires_ms", &in->expires_ms, false) < 0)
			goto out;
		const cJSON *meta = cJSON_GetObjectItemCaseSensitive(md, "meta");
		if (meta) {
			if (!cJSON_IsObject(meta))
				goto out;
			char *t = cJSON_PrintUnformatted(meta);
			if (!t)
				goto out;
			bool fits = strlen(t) <= REG_MAX_META;
			if (fits)
				strcpy(in->meta, t);
			cJSON_free(t);
			if (!fits)
				goto out;
		}
	}
	rc = 0;
out:
	json_free(v);
	return rc;
}

void reg_instance_json(struct json_writer *w, const struct reg_instance *in)
{
	char since[32], url[REG_MAX_ADDR + 16];
	json_time_rfc3339(since, in->since_ms);
	snprintf(url, sizeof url, "http://%s/", in->addr);
	json_kv_str(w, "service", in->service);
	json_kv_str(w, "id", in->id);
	json_kv_str(w, "addr", in->addr);
	json_kv_str(w, "url", url);
	json_key(w, "meta");
	json_raw(w, in->meta[0] ? in->meta : "{}", in->meta[0] ? strlen(in->meta) : 2);
	json_kv_str(w, "status", reg_status_name(in->status));
	/* a record another client wrote has no since_ms: unknown, not 1970 */
	if (in->since_ms) {
		json_kv_str(w, "since", since);
	} else {
		json_key(w, "since");
		json_raw(w, "null", 4);
	}
}

/* ------------------------------------------------------------ file: */

static int mkdir_p(const char *path)
{
	char tmp[4096 + 256];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0777) < 0 && errno != EEXIST)
				return -errno;
			*p = '/';
		}
	if (mkdir(tmp, 0777) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int reg_file_put(const char *dir, const struct reg_instance *in)
{
	char d[4096 + 256], path[4096 + 512], tmp[4096 + 600];
	snprintf(d, sizeof d, "%s/%s", dir, in->service);
	int r = mkdir_p(d);
	if (r < 0)
		return r;
	snprintf(path, sizeof path, "%s/%s", d, in->id);
	snprintf(tmp, sizeof tmp, "%s/.%s.%ld.tmp", d, in->id, (long)getpid());
	struct buf b = BUF_INIT;
	reg_value_format(&b, in);
	buf_putc(&b, '\n');
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		buf_free(&b);
		return -errno;
	}
	ssize_t w = write(fd, b.data, b.len);
	int err = w == (ssize_t)b.len ? 0 : (w < 0 ? -errno : -EIO);
	buf_free(&b);
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

int reg_file_remove(const char *dir, const char *service, const char *id)
{
	char path[4096 + 512];
	snprintf(path, sizeof path, "%s/%s/%s", dir, service, id);
	return unlink(path) < 0 ? -errno : 0;
}

/* The largest record file read; far above any valid value (whose meta is
 * at most REG_MAX_META bytes printed), so a bigger file is not a record. */
#define REG_FILE_MAX (64 * 1024)

/* in's service and id, both names (reg_name_check: at most REG_MAX_NAME
 * bytes), copied without snprintf: a thousand records, two each. */
static void set_names(struct reg_instance *in, const char *service, const char *id)
{
	size_t s = strnlen(service, REG_MAX_NAME), i = strnlen(id, REG_MAX_NAME);
	memcpy(in->service, service, s);
	in->service[s] = '\0';
	memcpy(in->id, id, i);
	in->id[i] = '\0';
}

/* Read one record, NAME under the open directory dfd, into *in (service
 * and id set from the path).  0, -ENOENT when it is gone, -EINVAL when it
 * is not a record, or -errno.  text holds REG_FILE_MAX + 1 bytes.
 *
 * One openat, one read and one close: render reads a thousand of these
 * and each system call costs microseconds.  A read of a regular file that
 * returns less than was asked has reached its end, so no second read is
 * needed to see the end; a read that fills text is a file too big. */
static int read_one(int dfd, const char *service, const char *name, char *text,
                    struct reg_instance *in)
{
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ELOOP ? -EINVAL : -errno;
	ssize_t n;
	do
		n = read(fd, text, REG_FILE_MAX + 1);
	while (n < 0 && errno == EINTR);
	int err = n < 0 ? -errno : 0;
	close(fd);
	if (err)
		return err == -EISDIR ? -EINVAL : err;
	if (n > REG_FILE_MAX)
		return -EINVAL;
	text[n] = '\0';
	set_names(in, service, name);
	return reg_value_parse(text, (size_t)n, in);
}

int reg_file_get(const char *dir, const char *service, const char *id, struct reg_instance *in)
{
	const char *why;
	if (reg_name_check(id, &why) < 0)
		return -EINVAL;
	char d[4096 + 256];
	snprintf(d, sizeof d, "%s/%s", dir, service);
	int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	char *text = malloc(REG_FILE_MAX + 1);
	int r = text ? read_one(dfd, service, id, text, in) : -ENOMEM;
	free(text);
	close(dfd);
	return r;
}

/* An array for n instances, for reg_file_list and reg_etcd_list (freed
 * with free()).
 *
 * An instance is 2.6 kB (its meta is kept whole, up to REG_MAX_META), so a
 * thousand fill 2.6 MB, and touching that memory for the first time is
 * what costs most in `render` of a thousand instances: one page fault per
 * 4 kB page, 650 of them, some 13 us each in a virtual machine.  From 1 MB
 * on, the array is aligned on 2 MB and rounded up to whole 2 MB pages,
 * and the kernel is asked to back it with transparent huge pages: one
 * fault per 2 MB (measured: 0.4 ms instead of 9 ms for 2.6 MB).  Where
 * THP is off the advice is refused and nothing else changes. */
struct reg_instance *reg_instances_alloc(size_t n)
{
	size_t bytes = (n ? n : 1) * sizeof(struct reg_instance);
	const size_t huge = 2u << 20;
	if (bytes < huge / 2)
		return malloc(bytes);
	bytes = (bytes + huge - 1) / huge * huge;
	void *p;
	if (posix_memalign(&p, huge, bytes) != 0)
		return NULL;
	(void)madvise(p, bytes, MADV_HUGEPAGE);
	return p;
}

/* ---- many records at once, through io_uring
 *
 * Past the process start, render of a thousand instances is three system
 * calls a record (openat, read, close), and on a virtual machine a system
 * call costs over a microsecond before it does anything.  With io_uring,
 * a batch of records is one io_uring_enter: each record is an OPENAT
 * into a slot of a registered file table (a direct descriptor, no fd),
 * linked to a READ from that slot, linked to a CLOSE of the slot.
 * Anything out of the ordinary for a record (an open failing otherwise
 * than "gone", a read error, a file that fills the slot's buffer) reads
 * that record again the plain way, read_one, which keeps the last word;
 * a ring that cannot be set up (an old kernel, io_uring disabled or
 * forbidden by a seccomp policy) reads them all that way. */

/* Valgrind cannot see the kernel fill a buffer through the ring: say so
 * (a no-op outside valgrind, and nothing where its header is missing). */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_DEFINED
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void)(p), (void)(n))
#endif

/* Records per io_uring_enter.  Fewer in flight keep the kernel's working
 * set (requests, files, inodes, page-cache entries of the batch) in the
 * CPU's caches: render of 1000 instances, 150 paired runs against 64:
 * 8 -0.25 ms, 16 -0.5 ms, 32 -0.35 ms, 128 +0.6 ms. */
#define URING_BATCH 16
#define URING_SLOT_BYTES 1024           /* read per record (a plain one is some 200 bytes); a bigger one is read again */

unsigned reg_file_uring_min = 32;       /* fewer records: not worth a ring */

enum { OP_OPEN, OP_READ, OP_CLOSE };

/* Read the count records names[0..count) under dfd into out, in order,
 * as reg_file_list does.  Returns how many names it handled (all of them,
 * or those of the batches done before a failed wait: the caller reads
 * the rest), or -ENOSYS when no ring can be had (nothing done). */
static long list_uring(int dfd, const char *service, const char *const *names, size_t count, char *text,
                      uint64_t now_ms, struct reg_instance *out, size_t *n)
{
	struct uring r;
	if (uring_init(&r, 4 * URING_BATCH, 4 * URING_BATCH) < 0)
		return -ENOSYS;
	char *bufs = malloc((size_t)URING_BATCH * URING_SLOT_BYTES);
	if (!bufs || uring_files_init(&r, URING_BATCH) < 0) {
		free(bufs);
		uring_free(&r);
		return -ENOSYS;
	}
	const char *batch_names[URING_BATCH];
	int res[URING_BATCH][3];
	for (size_t done = 0; done < count;) {
		size_t nb = count - done < URING_BATCH ? count - done : URING_BATCH;
		for (size_t j = 0; j < nb; j++) {
			const char *name = names[done + j];
			batch_names[j] = name;
			struct io_uring_sqe *q = uring_sqe(&r);
			INVARIANT(q != NULL);   /* 3 * URING_BATCH fit in the ring */
			q->opcode = IORING_OP_OPENAT;
			q->fd = dfd;
			q->addr = (uint64_t)(uintptr_t)name;
			q->open_flags = O_RDONLY | O_NOFOLLOW;   /* no O_CLOEXEC: a slot is no fd */
			q->file_index = (uint32_t)j + 1;
			q->flags = IOSQE_IO_LINK;
			q->user_data = j * 3 + OP_OPEN;
			q = uring_sqe(&r);
			INVARIANT(q != NULL);
			q->opcode = IORING_OP_READ;
			q->fd = (int)j;
			q->addr = (uint64_t)(uintptr_t)(bufs + j * URING_SLOT_BYTES);
			q->len = URING_SLOT_BYTES;
			q->off = 0;
			q->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK;
			q->user_data = j * 3 + OP_READ;
			q = uring_sqe(&r);
			INVARIANT(q != NULL);
			q->opcode = IORING_OP_CLOSE;
			q->file_index = (uint32_t)j + 1;
			q->user_data = j * 3 + OP_CLOSE;
		}
		size_t want = nb * 3, got = 0;
		while (got < want) {
			int w = uring_submit_wait(&r, (unsigned)(want - got), 0, UINT64_MAX);
			if (w < 0) {
				/* not seen in practice (a signal or a timeout is
				 * 0): the batch's reads may still be in flight, so
				 * their buffers are left to them, not freed */
				uring_free(&r);
				return (long)done;
			}
			struct io_uring_cqe *c;
			while ((c = uring_peek(&r))) {
				uint64_t u = c->user_data;
				INVARIANT(u < nb * 3);
				res[u / 3][u % 3] = c->res;
				uring_advance(&r);
				got++;
			}
		}
		for (size_t j = 0; j < nb; j++) {
			struct reg_instance *in = &out[*n];
			int rc;
			int o = res[j][OP_OPEN], rd = res[j][OP_READ];
			if (o == -ENOENT) {
				rc = -ENOENT;   /* removed since readdir */
			} else if (o < 0 || rd < 0 || rd >= URING_SLOT_BYTES) {
				rc = read_one(dfd, service, batch_names[j], text, in);
			} else {
				VALGRIND_MAKE_MEM_DEFINED(bufs + j * URING_SLOT_BYTES, (size_t)rd);
				memcpy(text, bufs + j * URING_SLOT_BYTES, (size_t)rd);
				text[rd] = '\0';
				set_names(in, service, batch_names[j]);
				rc = reg_value_parse(text, (size_t)rd, in);
			}
			if (rc < 0 || (now_ms && in->expires_ms && in->expires_ms <= now_ms))
				continue;
			(*n)++;
		}
		done += nb;
	}
	free(bufs);
	uring_free(&r);
	return (long)count;
}

static int cmp_name_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int reg_file_list(const char *dir, const char *service, uint64_t now_ms,
                  struct reg_instance **out, size_t *n)
{
	char d[4096 + 256];
	snprintf(d, sizeof d, "%s/%s", dir, service);
	*out = NULL;
	*n = 0;
	DIR *dp = opendir(d);
	if (!dp)
		return errno == ENOENT ? 0 : -errno;
	/* the names first (NUL-separated), so the array is sized once and
	 * never copied as it grows, with one pass over the directory */
	struct buf names = BUF_INIT;
	size_t count = 0;
	struct dirent *e;
	while ((e = readdir(dp))) {
		const char *why;
		if (reg_name_check(e->d_name, &why) < 0)
			continue;   /* ".", "..", temporary files, foreign names */
		buf_append(&names, e->d_name, strlen(e->d_name) + 1);
		count++;
	}
	char *text = malloc(REG_FILE_MAX + 1);
	const char **order = malloc((count ? count : 1) * sizeof *order);
	*out = reg_instances_alloc(count);
	if (!text || !order || !*out) {
		free(text);
		free(order);
		free(*out);
		*out = NULL;
		buf_free(&names);
		closedir(dp);
		return -ENOMEM;
	}
	/* read in id order, so the records come out sorted: sorting names
	 * is cheap, sorting 2.6 kB records afterwards is not (render and
	 * list skip their sort of a sorted set) */
	const char *name = names.data;
	for (size_t i = 0; i < count; i++, name += strlen(name) + 1)
		order[i] = name;
	if (count > 1)
		qsort(order, count, sizeof *order, cmp_name_ptr);
	size_t from = 0;
	if (count && count >= reg_file_uring_min) {
		long u = list_uring(dirfd(dp), service, order, count, text, now_ms, *out, n);
		from = u > 0 ? (size_t)u : 0;
	}
	for (size_t i = from; i < count; i++) {
		struct reg_instance *in = &(*out)[*n];
		/* removed since readdir, not a file, not a record: left out */
		if (read_one(dirfd(dp), service, order[i], text, in) < 0 ||
		    (now_ms && in->expires_ms && in->expires_ms <= now_ms))
			continue;
		(*n)++;
	}
	free(text);
	free(order);
	buf_free(&names);
	closedir(dp);
	return 0;
}

int reg_file_services(const char *dir, char (**out)[REG_MAX_NAME + 1], size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *dp = opendir(dir);
	if (!dp)
		return errno == ENOENT ? 0 : -errno;
	size_t cap = 0;
	struct dirent *e;
	while ((e = readdir(dp))) {
		const char *why;
		if (reg_name_check(e->d_name, &why) < 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			void *nv = realloc(*out, cap * sizeof **out);
			if (!nv) {
				closedir(dp);
				free(*out);
				*out = NULL;
				*n = 0;
				return -ENOMEM;
			}
			*out = nv;
		}
		snprintf((*out)[(*n)++], REG_MAX_NAME + 1, "%.128s", e->d_name);
	}
	closedir(dp);
	return 0;
}
