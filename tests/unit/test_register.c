/* Unit tests of lib/register: names, addresses, meta, the endpoint-manager
 * value, the etcd key, and the template language. */
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
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
