/*
 * register/template.c -- parse and render the template language of
 * template.h.  The parse makes a tree of nodes (text, field, range, if)
 * checked whole before anything renders, so a template that renders once
 * renders always: no field is looked up by a name unknown at parse time.
 * Nesting is bounded (REG_TPL_MAX_DEPTH) so bad input cannot exhaust the
 * stack.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "register/template.h"

#define REG_TPL_MAX_DEPTH 16

enum kind { N_TEXT, N_FIELD, N_RANGE, N_IF };
enum field { F_ID, F_ADDR, F_HOST, F_PORT, F_URL, F_STATUS, F_SINCE, F_SERVICE, F_META, F_COUNT };

struct node {
	enum kind kind;
	const char *text; size_t len;       /* N_TEXT: into the template's copy */
	enum field field;                   /* N_FIELD, N_IF */
	char key[128];                      /* F_META */
	char *dflt;                         /* N_FIELD: `or "TEXT"` */
	struct node *body, *alt;            /* N_RANGE, N_IF */
	struct node *next;
};

struct reg_template {
	char *src;
	struct node *root;
};

struct parser {
	const char *s, *end, *p;
	char *err; size_t err_size;
	int depth;
};

static void where(const struct parser *ps, const char *at, int *line, int *col)
{
	*line = 1;
	*col = 1;
	for (const char *q = ps->s; q < at; q++) {
		if (*q == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

static int fail(struct parser *ps, const char *at, const char *what, const char *arg, size_t arg_len)
{
	int line, col;
	where(ps, at, &line, &col);
	if (arg)
		snprintf(ps->err, ps->err_size, "%d:%d: %s '%.*s'", line, col, what,
		         (int)(arg_len > 40 ? 40 : arg_len), arg);
	else
		snprintf(ps->err, ps->err_size, "%d:%d: %s", line, col, what);
	return -1;
}

static void free_nodes(struct node *n)
{
	while (n) {
		struct node *next = n->next;
		free_nodes(n->body);
		free_nodes(n->alt);
		free(n->dflt);
		free(n);
		n = next;
	}
}

static int parse_field(struct parser *ps, const char *w, size_t n, bool in_range, struct node *nd)
{
	static const struct { const char *name; enum field f; bool range; } fields[] = {
		{"id", F_ID, true}, {"addr", F_ADDR, true}, {"host", F_HOST, true},
		{"port", F_PORT, true}, {"url", F_URL, true}, {"status", F_STATUS, true},
		{"since", F_SINCE, true}, {"service", F_SERVICE, false}, {"count", F_COUNT, false},
	};
	if (n > 5 && !memcmp(w, "meta.", 5)) {
		if (!in_range)
			return fail(ps, w, "a field of an instance outside range:", w, n);
		if (n - 5 >= sizeof nd->key)
			return fail(ps, w, "meta key too long:", w, n);
		nd->field = F_META;
		memcpy(nd->key, w + 5, n - 5);
		nd->key[n - 5] = '\0';
		return 0;
	}
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (strlen(fields[i].name) == n && !memcmp(fields[i].name, w, n)) {
			if (fields[i].range && !in_range)
				return fail(ps, w, "a field of an instance outside range:", w, n);
			if (fields[i].f == F_COUNT && in_range)
				return fail(ps, w, "count is not a field of an instance:", w, n);
			nd->field = fields[i].f;
			return 0;
		}
	return fail(ps, w, "unknown field", w, n);
}

static const char *skip_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static const char *word_end(const char *p, const char *e)
{
	while (p < e && *p != ' ' && *p != '\t' && *p != '}')
		p++;
	return p;
}

/* Parse nodes until {{end}}/{{else}} (returned in *stop: 0 none, 'e'
 * end, 'l' else) or the end of text. */
static int parse_list(struct parser *ps, bool in_range, struct node **out, int *stop)
{
	struct node **tail = out;
	*out = NULL;
	*stop = 0;
	if (++ps->depth > REG_TPL_MAX_DEPTH)
		return fail(ps, ps->p, "nested deeper than 16", NULL, 0);
	while (ps->p < ps->end) {
		const char *open = NULL;
		for (const char *q = ps->p; q + 1 < ps->end; q++)
			if (q[0] == '{' && q[1] == '{') {
				open = q;
				break;
			}
		const char *text_end = open ? open : ps->end;
		if (text_end > ps->p) {
			struct node *nd = calloc(1, sizeof *nd);
			if (!nd)
				return fail(ps, ps->p, "out of memory", NULL, 0);
			nd->kind = N_TEXT;
			nd->text = ps->p;
			nd->len = (size_t)(text_end - ps->p);
			*tail = nd;
			tail = &nd->next;
		}
		if (!open) {
			ps->p = ps->end;
			break;
		}
		const char *close = NULL;
		for (const char *q = open + 2; q + 1 < ps->end; q++)
			if (q[0] == '}' && q[1] == '}') {
				close = q;
				break;
			}
		if (!close)
			return fail(ps, open, "'{{' without '}}'", NULL, 0);
		const char *a = skip_ws(open + 2, close);
		const char *we = word_end(a, close);
		size_t wn = (size_t)(we - a);
		ps->p = close + 2;
		if (wn == 0)
			return fail(ps, open, "empty action", NULL, 0);
		if ((wn == 3 && !memcmp(a, "end", 3)) || (wn == 4 && !memcmp(a, "else", 4))) {
			if (skip_ws(we, close) != close)
				return fail(ps, we, "unexpected text after", a, wn);
			*stop = wn == 3 ? 'e' : 'l';
			ps->depth--;
			return 0;
		}
		struct node *nd = calloc(1, sizeof *nd);
		if (!nd)
			return fail(ps, a, "out of memory", NULL, 0);
		*tail = nd;
		tail = &nd->next;
		int st;
		if (wn == 5 && !memcmp(a, "range", 5)) {
			if (in_range)
				return fail(ps, a, "range inside range", NULL, 0);
			if (skip_ws(we, close) != close)
				return fail(ps, we, "unexpected text after", a, wn);
			nd->kind = N_RANGE;
			if (parse_list(ps, true, &nd->body, &st) < 0)
				return -1;
			if (st != 'e')
				return fail(ps, open, st ? "{{else}} in range" : "range without {{end}}", NULL, 0);
			continue;
		}
		if (wn == 2 && !memcmp(a, "if", 2)) {
			const char *f = skip_ws(we, close);
			const char *fe = word_end(f, close);
			if (fe == f)
				return fail(ps, a, "if without a field", NULL, 0);
			nd->kind = N_IF;
			if (parse_field(ps, f, (size_t)(fe - f), in_range, nd) < 0)
				return -1;
			if (skip_ws(fe, close) != close)
				return fail(ps, fe, "unexpected text after", f, (size_t)(fe - f));
			if (parse_list(ps, in_range, &nd->body, &st) < 0)
				return -1;
			if (st == 'l') {
				if (parse_list(ps, in_range, &nd->alt, &st) < 0)
					return -1;
				if (st == 'l')
					return fail(ps, open, "two {{else}} in one if", NULL, 0);
			}
			if (st != 'e')
				return fail(ps, open, "if without {{end}}", NULL, 0);
			continue;
		}
		nd->kind = N_FIELD;
		if (parse_field(ps, a, wn, in_range, nd) < 0)
			return -1;
		const char *r = skip_ws(we, close);
		if (r != close) {
			if (close - r < 2 || memcmp(r, "or", 2) || (r[2] != ' ' && r[2] != '\t'))
				return fail(ps, r, "expected '}}' or 'or \"TEXT\"' after", a, wn);
			const char *q = skip_ws(r + 2, close);
			if (q >= close || *q != '"')
				return fail(ps, q, "expected a quoted default after 'or'", NULL, 0);
			const char *qe = memchr(q + 1, '"', (size_t)(close - q - 1));
			if (!qe)
				return fail(ps, q, "unterminated default", NULL, 0);
			if (skip_ws(qe + 1, close) != close)
				return fail(ps, qe + 1, "unexpected text after the default", NULL, 0);
			nd->dflt = strndup(q + 1, (size_t)(qe - q - 1));
			if (!nd->dflt)
				return fail(ps, q, "out of memory", NULL, 0);
		}
	}
	ps->depth--;
	return 0;
}

struct reg_template *reg_template_parse(const char *text, size_t len, char *err, size_t err_size)
{
	struct reg_template *t = calloc(1, sizeof *t);
	if (!t || !(t->src = malloc(len + 1))) {
		free(t);
		snprintf(err, err_size, "out of memory");
		return NULL;
	}
	memcpy(t->src, text, len);
	t->src[len] = '\0';
	struct parser ps = {t->src, t->src + len, t->src, err, err_size, 0};
	int st;
	if (parse_list(&ps, false, &t->root, &st) < 0 ||
	    (st && fail(&ps, ps.p, st == 'e' ? "{{end}} without range or if" : "{{else}} without if",
	                NULL, 0) < 0)) {
		reg_template_free(t);
		return NULL;
	}
	return t;
}

void reg_template_free(struct reg_template *t)
{
	if (!t)
		return;
	free_nodes(t->root);
	free(t->src);
	free(t);
}

/* The value of a field into tmp (or a pointer into the instance). */
static const char *value(const struct node *nd, const char *service, const struct reg_instance *in,
                         size_t n, char *tmp, size_t size)
{
	const char *colon;
	switch (nd->field) {
	case F_ID: return in->id;
	case F_ADDR: return in->addr;
	case F_HOST:
		colon = strrchr(in->addr, ':');
		snprintf(tmp, size, "%.*s", colon ? (int)(colon - in->addr) : (int)strlen(in->addr), in->addr);
		return tmp;
	case F_PORT:
		colon = strrchr(in->addr, ':');
		return colon ? colon + 1 : "";
	case F_URL: snprintf(tmp, size, "http://%s/", in->addr); return tmp;
	case F_STATUS: return reg_status_name(in->status);
	case F_SINCE:
		if (!in->since_ms)
			return "";   /* written by another client: unknown */
		json_time_rfc3339(tmp, in->since_ms);
		return tmp;
	case F_SERVICE: return service;
	case F_COUNT: snprintf(tmp, size, "%zu", n); return tmp;
	case F_META:
		return reg_meta_get(in->meta, nd->key, tmp, size);
	}
	return "";
}

static void render(const struct node *nd, const char *service, const struct reg_instance *v, size_t n,
                   const struct reg_instance *in, struct buf *out)
{
	char tmp[REG_MAX_META + 64];
	for (; nd; nd = nd->next) {
		const char *s;
		switch (nd->kind) {
		case N_TEXT:
			buf_append(out, nd->text, nd->len);
			break;
		case N_FIELD:
			s = value(nd, service, in, n, tmp, sizeof tmp);
			buf_puts(out, *s || !nd->dflt ? s : nd->dflt);
			break;
		case N_IF:
			s = value(nd, service, in, n, tmp, sizeof tmp);
			render(*s && strcmp(s, "0") ? nd->body : nd->alt, service, v, n, in, out);
			break;
		case N_RANGE:
			for (size_t i = 0; i < n; i++)
				render(nd->body, service, v, n, &v[i], out);
			break;
		}
	}
}

void reg_template_render(const struct reg_template *t, const char *service,
                         const struct reg_instance *v, size_t n, struct buf *out)
{
	render(t->root, service, v, n, NULL, out);
}
