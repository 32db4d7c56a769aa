/* Unit tests of lib/register: names, addresses, meta, the endpoint-manager
 * value, the etcd key, and the template language. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/json.h"
#include "register/check.h"
#include "register/etcd.h"
#include "register/register.h"
#include "register/template.h"
#include "tap.h"

static char out[4096];

static const char *render(const char *tpl, const struct reg_instance *v, size_t n)
{
	char err[256];
	struct reg_template *t = reg_template_parse(tpl, strlen(tpl), err, sizeof err);
	if (!t) {
		snprintf(out, sizeof out, "ERR %s", err);
		return out;
	}
	struct buf b = BUF_INIT;
	reg_template_render(t, "web", v, n, &b);
	snprintf(out, sizeof out, "%s", b.data ? b.data : "");
	buf_free(&b);
	reg_template_free(t);
	return out;
}

/* reg_value_parse (its fast path, then cJSON when unsure) and cJSON alone
 * give the same answer: the same refusal, or the same instance. */
static bool same_answer(const char *text, size_t len)
{
	struct reg_instance a, b;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	strcpy(a.service, "web");
	strcpy(a.id, "a");
	b = a;
	int ra = reg_value_parse(text, len, &a), rb = reg_value_parse_cjson(text, len, &b);
	if (ra != rb)
		return false;
	return ra < 0 || (!strcmp(a.service, b.service) && !strcmp(a.id, b.id) && !strcmp(a.addr, b.addr) &&
	                  !strcmp(a.meta, b.meta) && a.status == b.status && a.since_ms == b.since_ms &&
	                  a.expires_ms == b.expires_ms);
}

/* Records, plain and odd, each mutated many ways (seeded: a failure
 * names the seed and replays): a byte changed to one of JSON's
 * meaningful characters, one dropped, one doubled. */
static void fast_path_agrees(void)
{
	static const char *const base[] = {
		"{\"Op\":0,\"Addr\":\"10.0.0.1:8080\",\"Metadata\":{\"service\":\"web\",\"id\":\"a\","
		"\"status\":\"passing\",\"since_ms\":1764930000000,\"meta\":{\"zone\":\"eu\",\"tier\":\"1\"},"
		"\"expires_ms\":1764930010000}}\n",
		"{\"Op\": 0, \"Addr\": \"10.0.0.2:8080\", \"Metadata\": {\"service\": \"web\", \"id\": \"i2\", "
		"\"status\": \"passing\", \"since_ms\": 1764930000000, \"meta\": {\"zone\": \"z2\"}, "
		"\"expires_ms\": 1764930010000}}",
		"{\"Op\":0,\"Addr\":\"h:1\",\"Metadata\":{\"status\":\"passing\",\"st\\u0061tus\":\"critical\",\"status\":\"x\"}}",
		"{\"Addr\":\"[::1]:81\",\"Metadata\":{\"status\":\"critical\",\"meta\":{}}}",
		"{\"Op\":0,\"Addr\":\"h:1\",\"Metadata\":null}",
		"{\"Op\":0,\"Addr\":\"h:1\",\"Metadata\":{\"since_ms\":1e3,\"meta\":{\"a\":\"\\u00e9\",\"b\":2}}}",
		"{\"Op\":0,\"Addr\":\"h:1\",\"Addr\":\"h:2\",\"Metadata\":{\"status\":\"starting\",\"status\":\"x\"}}",
		" {\"Op\":-0,\"Addr\":\"h:1\",\"Metadata\":{\"expires_ms\":9007199254740991,\"x\":[1,{\"y\":null}]}} ",
		/* the layout etcd holds (no expires_ms), and a zero since_ms */
		"{\"Op\":0,\"Addr\":\"10.0.0.3:80\",\"Metadata\":{\"service\":\"big\",\"id\":\"i3\","
		"\"status\":\"critical\",\"since_ms\":0,\"meta\":{}}}",
		"{\"Op\":0,\"Addr\":\"h:1\",\"Metadata\":{\"service\":\"w\",\"id\":\"x\",\"status\":\"starting\","
		"\"since_ms\":1,\"meta\":{\"k\":\"v\"},\"expires_ms\":2}}",
	};
	static const char alphabet[] = "{}[]\":,\\ 0123456789.-+eEtfnu\x01\x7f\xc3\xa9";
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int bad = 0, tried = 0;
	for (size_t k = 0; k < sizeof base / sizeof base[0]; k++) {
		size_t n = strlen(base[k]);
		bad += !same_answer(base[k], n);
		for (int m = 0; m < 20000 && bad == 0; m++) {
			char t[512];
			memcpy(t, base[k], n);
			size_t len = n;
			for (int edits = 1 + m % 3; edits > 0; edits--) {
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				size_t at = (size_t)(seed >> 33) % len;
				int op = (int)(seed >> 20) % 3;
				char c = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
				if (op == 0) {
					t[at] = c;
				} else if (op == 1 && len > 1) {
					memmove(t + at, t + at + 1, len - at - 1);
					len--;
				} else if (len < sizeof t - 1) {
					memmove(t + at + 1, t + at, len - at);
					t[at] = c;
					len++;
				}
			}
			tried++;
			if (!same_answer(t, len)) {
				bad++;
				diag("record %zu, mutation %d differs: %.*s", k, m, (int)len, t);
			}
		}
	}
	ok(bad == 0, "the fast reading of a record answers as cJSON does (%d mutated records)", tried);
}

/* reg_meta_get as cJSON alone answers it: the first member named key, a
 * string as it is, anything else as its JSON text, "" when absent. */
static const char *meta_get_cjson(const char *meta, const char *key, char *o, size_t size)
{
	o[0] = '\0';
	json_value *v = json_parse(meta, strlen(meta), NULL);
	const cJSON *m = v ? cJSON_GetObjectItemCaseSensitive(v, key) : NULL;
	if (cJSON_IsString(m)) {
		snprintf(o, size, "%s", m->valuestring);
	} else if (m) {
		char *t = cJSON_PrintUnformatted(m);
		if (t)
			snprintf(o, size, "%s", t);
		cJSON_free(t);
	}
	json_free(v);
	return o;
}

/* reg_meta_get (its scan, then cJSON when unsure) answers as cJSON does,
 * on the meta texts a record can hold and on odd ones. */
static void meta_get_agrees(void)
{
	static const char *const metas[] = {
		"{}", "{\"zone\":\"eu\"}", "{\"a\":\"1\",\"zone\":\"z2\"}", "{ \"zone\" : \"eu\" } ",
		"{\"zone\":\"a\\\"b\"}", "{\"zone\":\"\\u00e9t\u00e9\"}", "{\"z\\u006fne\":\"x\",\"zone\":\"y\"}",
		"{\"zone\":\"first\",\"zone\":\"second\"}", "{\"zone\":42}", "{\"zone\":true}",
		"{\"zone\":null}", "{\"zone\":{\"k\":[1,2]}}", "{\"zone\":\"\"}", "{\"Zone\":\"eu\"}",
		"{\"zone\":\"eu\"} x", "{\"zone\":\"eu\"", "[\"zone\"]", "", "not json",
		"{\"zone\":\"a very long value that does not fit in the small buffer\"}",
		/* a lone surrogate elsewhere: cJSON refuses the whole text */
		"{\"zone\":\"eu\",\"x\":\"\\udc00\"}", "{\"zone\":\"eu\",\"x\":{\"y\":\"\\ud800x\"}}",
		"{\"x\":[\"\\udc00\"],\"zone\":\"eu\"}", "{\"zone\":\"\\ud83d\\ude00\"}",
	};
	static const char *const keys[] = {"zone", "a", "k", ""};
	int bad = 0, tried = 0;
	for (size_t i = 0; i < sizeof metas / sizeof *metas; i++)
		for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
			for (size_t size = 8; size <= 64; size += 56) {
				char a[64], b[64];
				reg_meta_get(metas[i], keys[k], a, size);
				meta_get_cjson(metas[i], keys[k], b, size);
				tried++;
				if (strcmp(a, b)) {
					diag("meta %s key %s: '%s', cJSON '%s'", metas[i], keys[k], a, b);
					bad++;
				}
			}
	ok(bad == 0, "reg_meta_get answers as cJSON does (%d cases)", tried);
}

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

/* reg_file_list through io_uring and the plain way read the same set,
 * odd entries included: a record too big for a ring slot, one expired,
 * one that is not a record, a directory, a symbolic link, a temporary
 * file. */
static void uring_agrees(void)
{
	char root[] = "/tmp/test_register.XXXXXX";
	if (!mkdtemp(root)) {
		ok(0, "a scratch directory");
		return;
	}
	char dir[256];
	snprintf(dir, sizeof dir, "%s/web", root);
	mkdir(dir, 0777);
	uint64_t now = reg_now_ms();
	for (int i = 0; i < 150; i++) {
		struct reg_instance in = {0};
		strcpy(in.service, "web");
		snprintf(in.id, sizeof in.id, "i%d", i);
		snprintf(in.addr, sizeof in.addr, "10.0.0.%d:80", i);
		strcpy(in.meta, "{\"zone\":\"eu\"}");
		in.status = i % 3 ? REG_PASSING : REG_CRITICAL;
		in.since_ms = now;
		in.expires_ms = i == 7 ? now - 1000 : now + 60000;
		if (i == 9) {   /* past a ring slot's 1024 bytes */
			strcpy(in.meta, "{\"big\":\"");
			memset(in.meta + 8, 'x', 1500);
			strcpy(in.meta + 1508, "\"}");
		}
		reg_file_put(root, &in);
	}
	put_file(dir, "junk", "not json");
	put_file(dir, ".i1.123.tmp", "{}");
	char path[512], target[512];
	snprintf(path, sizeof path, "%s/adir", dir);
	mkdir(path, 0777);
	snprintf(path, sizeof path, "%s/link", dir);
	snprintf(target, sizeof target, "%s/i1", dir);
	if (symlink(target, path) < 0)
		diag("symlink: %s", strerror(errno));

	struct reg_instance *a, *b;
	size_t na, nb;
	unsigned keep = reg_file_uring_min;
	reg_file_uring_min = 1;
	int ra = reg_file_list(root, "web", now, &a, &na);
	reg_file_uring_min = (unsigned)-1;
	int rb = reg_file_list(root, "web", now, &b, &nb);
	reg_file_uring_min = keep;
	bool same = ra == 0 && rb == 0 && na == nb;
	for (size_t i = 0; same && i < na; i++)
		same = !strcmp(a[i].id, b[i].id) && !strcmp(a[i].addr, b[i].addr) &&
		       !strcmp(a[i].meta, b[i].meta) && a[i].status == b[i].status &&
		       a[i].expires_ms == b[i].expires_ms;
	ok(same, "io_uring and plain reads list the same %zu records (of %zu)", na, nb);
	bool sorted = ra == 0;
	for (size_t i = 1; sorted && i < na; i++)
		sorted = strcmp(a[i - 1].id, a[i].id) < 0;
	ok(sorted, "in id order, as strcmp sorts");
	is_int((long)na, 149, "every live record, the big one too; not the expired, junk, dir, link or temporary");
	free(a);
	free(b);
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		diag("cannot remove %s", root);
}

int main(void)
{
	fast_path_agrees();
	meta_get_agrees();
	uring_agrees();
	const char *why;
	ok(reg_name_check("web-1", &why) == 0, "a plain name is valid");
	ok(reg_name_check("10.0.0.1:80", &why) == 0, "an address is a valid id");
	ok(reg_name_check("a/b", &why) < 0 && strstr(why, "'/'"), "a '/' is refused, named");
	ok(reg_name_check("", &why) < 0, "an empty name is refused");
	ok(reg_name_check(".x", &why) < 0, "a leading '.' is refused (temporary files)");
	ok(reg_name_check("a b", &why) < 0, "a space is refused");
	char big[200];
	memset(big, 'a', 129);
	big[129] = '\0';
	ok(reg_name_check(big, &why) < 0, "129 bytes are refused");
	ok(reg_addr_check("127.0.0.1:8080", &why) == 0, "HOST:PORT is an address");
	ok(reg_addr_check("[::1]:80", &why) == 0, "[v6]:PORT is an address");
	ok(reg_addr_check("127.0.0.1", &why) < 0, "no port is refused");
	ok(reg_addr_check("h:0", &why) < 0, "port 0 is refused");
	ok(reg_addr_check(":80", &why) < 0, "no host is refused");

	char meta[REG_MAX_META + 1] = "{}";
	ok(reg_meta_add(meta, sizeof meta, "zone=eu", &why) == 0 &&
	   reg_meta_add(meta, sizeof meta, "note=a \"q\"", &why) == 0, "meta fields are added");
	is_str(meta, "{\"zone\":\"eu\",\"note\":\"a \\\"q\\\"\"}", "as an escaped JSON object");
	ok(reg_meta_add(meta, sizeof meta, "=x", &why) < 0, "an empty key is refused");
	ok(reg_meta_add(meta, sizeof meta, "x", &why) < 0, "no '=' is refused");

	struct reg_instance in = {0}, back = {0};
	strcpy(in.service, "web");
	strcpy(in.id, "a");
	strcpy(in.addr, "10.0.0.1:80");
	strcpy(in.meta, meta);
	in.status = REG_CRITICAL;
	in.since_ms = 1764930000123;
	in.expires_ms = 1764930010123;
	struct buf b = BUF_INIT;
	reg_value_format(&b, &in);
	ok(strncmp(b.data, "{\"Op\":0,\"Addr\":\"10.0.0.1:80\",\"Metadata\":{", 41) == 0,
	   "the value is etcd's endpoint-manager JSON");
	strcpy(back.service, "web");
	strcpy(back.id, "a");
	ok(reg_value_parse(b.data, b.len, &back) == 0 && back.status == REG_CRITICAL &&
	   back.since_ms == in.since_ms && back.expires_ms == in.expires_ms &&
	   !strcmp(back.meta, in.meta) && !strcmp(back.addr, in.addr), "and parses back the same");
	const char *foreign = "{\"Op\":0,\"Addr\":\"1.2.3.4:5\",\"Metadata\":null}";
	ok(reg_value_parse(foreign, strlen(foreign), &back) == 0 && back.status == REG_PASSING &&
	   !strcmp(back.meta, "{}"), "an endpoint another manager wrote counts as passing");
	ok(reg_value_parse("{\"Op\":1,\"Addr\":\"x:1\"}", 21, &back) < 0, "a delete op is not an instance");
	ok(reg_value_parse("[]", 2, &back) < 0, "not an object is refused");
	char tmp[64];
	is_str(reg_meta_get(in.meta, "zone", tmp, sizeof tmp), "eu", "reg_meta_get reads a field");
	is_str(reg_meta_get(in.meta, "none", tmp, sizeof tmp), "", "and empty for a missing one");

	struct reg_instance dec;
	const char *key = "dsys/services/web/a";
	ok(reg_etcd_decode(key, strlen(key), b.data, b.len, &dec) == 0 && !strcmp(dec.service, "web") &&
	   !strcmp(dec.id, "a"), "an etcd key names the service and the id");
	ok(reg_etcd_decode("dsys/services/web", 17, b.data, b.len, &dec) < 0, "a key without an id is not ours");
	/* decode no longer clears the record first: what a reused array
	 * held before must not show through any field */
	memset(&dec, 0xa5, sizeof dec);
	const char *longkey = "dsys/services/w/b";
	ok(reg_etcd_decode(longkey, strlen(longkey), b.data, b.len, &dec) == 0 && !strcmp(dec.service, "w") &&
	   !strcmp(dec.id, "b") && !strcmp(dec.addr, in.addr) && !strcmp(dec.meta, in.meta) &&
	   dec.status == REG_CRITICAL && dec.since_ms == in.since_ms && dec.expires_ms == in.expires_ms,
	   "a decode into a dirty record leaves nothing of it in any field");
	const char *bare = "{\"Op\":0,\"Addr\":\"1.2.3.4:5\"}";
	memset(&dec, 0xa5, sizeof dec);
	ok(reg_etcd_decode(longkey, strlen(longkey), bare, strlen(bare), &dec) == 0 && !strcmp(dec.addr, "1.2.3.4:5") &&
	   !strcmp(dec.meta, "{}") && dec.status == REG_PASSING && dec.since_ms == 0 && dec.expires_ms == 0,
	   "and a bare endpoint gets the defaults, not the dirt");
	buf_free(&b);

	struct reg_check c;
	ok(reg_check_parse("http://127.0.0.1:80/health", &c, &why) == 0 && c.kind == REG_CHECK_HTTP, "http check");
	ok(reg_check_parse("tcp://127.0.0.1:80", &c, &why) == 0 && c.kind == REG_CHECK_TCP, "tcp check");
	ok(reg_check_parse("exec:true", &c, &why) == 0 && c.kind == REG_CHECK_EXEC, "exec check");
	ok(reg_check_parse("ftp://x", &c, &why) < 0, "another scheme is refused");
	ok(reg_check_parse("tcp://x", &c, &why) < 0, "tcp without a port is refused");
	char res[128];
	reg_check_parse("exec:exit 3", &c, &why);
	ok(reg_check_run(&c, 1000, res, sizeof res) < 0, "a failing exec check fails");
	is_str(res, "exit 3", "and says how");
	reg_check_parse("exec:sleep 5", &c, &why);
	ok(reg_check_run(&c, 100, res, sizeof res) < 0 && strstr(res, "timed out"), "an overrun exec check is killed");

	struct reg_instance two[2] = {0};
	strcpy(two[0].id, "a");
	strcpy(two[0].addr, "10.0.0.1:80");
	strcpy(two[0].meta, "{\"w\":\"5\"}");
	strcpy(two[1].id, "b");
	strcpy(two[1].addr, "[::1]:81");
	strcpy(two[1].meta, "{}");
	is_str(render("{{range}}{{addr}} {{meta.w or \"1\"}};{{end}}", two, 2), "10.0.0.1:80 5;[::1]:81 1;",
	       "range, fields and defaults");
	is_str(render("{{range}}{{host}}|{{port}}{{if meta.w}}!{{else}}?{{end}} {{end}}", two, 2),
	       "10.0.0.1|80! [::1]|81? ", "host, port, if and else");
	is_str(render("{{service}} {{count}}{{if count}} some{{end}}", two, 0), "web 0", "outside range: service and count");
	is_str(render("x\n {{range}}{{nope}}{{end}}", two, 2), "ERR 2:13: unknown field 'nope'", "an unknown field, with line and column");
	is_str(render("{{range}}", two, 2), "ERR 1:1: range without {{end}}", "an unclosed range");
	is_str(render("{{end}}", two, 2), "ERR 1:8: {{end}} without range or if", "a stray end");
	is_str(render("{{addr", two, 2), "ERR 1:1: '{{' without '}}'", "an unclosed action");
	ok(!strncmp(render("{{range}}{{range}}{{end}}{{end}}", two, 2), "ERR", 3), "range in range is refused");
	return tap_done();
}
