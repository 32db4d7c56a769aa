/*
 * fuzz_register.c -- libFuzzer target for lib/register's parsers.
 *
 * The input is tried as a stored value (reg_value_parse), and,
 * NUL-terminated, as a name, an address, a check and a meta KEY=VALUE.
 * Properties (trap on violation): each returns its documented codes; the
 * value's fast reading and cJSON's give the same answer; a
 * parsed value has NUL-terminated fields and a known status, formats again
 * and parses back to the same instance; a meta object built by
 * reg_meta_add is valid JSON that a value carries through a round trip;
 * a template either parses and renders, or fails with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "register/check.h"
#include "register/register.h"
#include "register/template.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	static struct reg_instance in, back;
	memset(&in, 0, sizeof in);
	strcpy(in.service, "s");
	strcpy(in.id, "i");
	int r = reg_value_parse((const char *)data, size, &in);
	CHECK(r == 0 || r < 0);
	/* the fast reading answers as cJSON alone does */
	memset(&back, 0, sizeof back);
	strcpy(back.service, "s");
	strcpy(back.id, "i");
	CHECK(reg_value_parse_cjson((const char *)data, size, &back) == r);
	if (r == 0)
		CHECK(!strcmp(back.addr, in.addr) && !strcmp(back.meta, in.meta) &&
		      back.status == in.status && back.since_ms == in.since_ms &&
		      back.expires_ms == in.expires_ms);
	if (r == 0) {
		CHECK(memchr(in.addr, 0, sizeof in.addr) && memchr(in.meta, 0, sizeof in.meta));
		CHECK(in.status <= REG_CRITICAL);
		CHECK(!strcmp(in.service, "s") && !strcmp(in.id, "i"));
		struct buf b = BUF_INIT;
		reg_value_format(&b, &in);
		memset(&back, 0, sizeof back);
		strcpy(back.service, "s");
		strcpy(back.id, "i");
		CHECK(reg_value_parse(b.data, b.len, &back) == 0);
		CHECK(!strcmp(back.addr, in.addr) && !strcmp(back.meta, in.meta));
		CHECK(back.status == in.status && back.since_ms == in.since_ms &&
		      back.expires_ms == in.expires_ms);
		buf_free(&b);
	}

	char *text = malloc(size + 1);
	memcpy(text, data, size);
	text[size] = 0;
	const char *why = NULL;
	r = reg_name_check(text, &why);
	CHECK(r == 0 || (r == -1 && why && *why));
	if (r == 0)
		CHECK(!strchr(text, '/') && strlen(text) <= REG_MAX_NAME && text[0] != '.');
	why = NULL;
	r = reg_addr_check(text, &why);
	CHECK(r == 0 || (r == -1 && why && *why));
	static struct reg_check c;
	why = NULL;
	r = reg_check_parse(text, &c, &why);
	CHECK(r == 0 || (r == -1 && why && *why));
	CHECK(r < 0 || (c.kind >= REG_CHECK_HTTP && c.kind <= REG_CHECK_EXEC &&
	                memchr(c.target, 0, sizeof c.target)));
	char meta[REG_MAX_META + 1] = "{}";
	why = NULL;
	r = reg_meta_add(meta, sizeof meta, text, &why);
	CHECK(r == 0 || (r == -1 && why && *why));
	if (r == 0) {
		memset(&in, 0, sizeof in);
		strcpy(in.addr, "h:1");
		strcpy(in.meta, meta);
		struct buf b = BUF_INIT;
		reg_value_format(&b, &in);
		CHECK(reg_value_parse(b.data, b.len, &back) == 0);
		buf_free(&b);
	}
	/* as a template: parse, and render what parses over two instances */
	char terr[256] = "";
	struct reg_template *t = reg_template_parse((const char *)data, size, terr, sizeof terr);
	CHECK(t || (terr[0] && memchr(terr, 0, sizeof terr)));
	if (t) {
		static struct reg_instance two[2];
		memset(two, 0, sizeof two);
		strcpy(two[0].id, "a");
		strcpy(two[0].addr, "10.0.0.1:80");
		strcpy(two[0].meta, "{\"zone\":\"eu\",\"n\":1}");
		strcpy(two[1].id, "b");
		strcpy(two[1].addr, "[::1]:8080");
		strcpy(two[1].meta, "{}");
		struct buf b = BUF_INIT;
		reg_template_render(t, "web", two, 2, &b);
		buf_free(&b);
		reg_template_free(t);
	}
	free(text);
	return 0;
}
