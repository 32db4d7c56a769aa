/*
 * dsys-trace show -- a trace as a waterfall, in the terminal or as SVG.
 *
 * Input is whatever holds OTLP/JSON requests: collect's lines, a
 * DSYS_TRACE_FILE, an OTLP JSON file (one request, even pretty-printed),
 * or their concatenation; lines that are not requests (collect's ready
 * line) are skipped.  Spans and log records are read through
 * obs/otlp_codec, so the reader is the collector's.
 *
 * Each trace is drawn as its tree of spans (children in start order,
 * orphans whose parent never arrived as roots), one row per span: name
 * indented by depth, service, start offset, duration and a bar on a
 * time axis shared by the whole trace.  The critical path -- from each
 * root, the child that ends last, again and again: what the trace's end
 * waited for -- is marked '*', a span with error status '!', and log
 * records are rows of their own under the span they belong to, with a
 * '|' at their time on the axis.  The output is plain text with no
 * terminal codes, so it is the same in a pipe and in a test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/invariant.h"
#include "cli/cli.h"
#include "obs/otlp_codec.h"
#include "obs/trace.h"

#include "dsys-trace.h"

#define SHOW_MAX_INPUT (256u << 20)  /* bytes of input read, at most */
#define SHOW_BAR 40                  /* columns of the time axis */
#define SHOW_MAX_DEPTH 64            /* deeper spans are drawn at this depth */

enum { OPT_SVG = 1, OPT_FILE };

static const struct cli_option show_options[] = {
	{"svg", 0, "FILE", NULL, "also draw the trace(s) as an SVG picture in FILE", OPT_SVG},
	{"file", 0, "PATH", "DSYS_TRACE_FILE", "read spans and logs from PATH (default: DSYS_TRACE_FILE, else stdin; - for stdin)", OPT_FILE},
	CLI_END
};

static const struct cli_spec show_spec = {
	"dsys-trace show", "[OPTION]... [TRACE_ID]",
	"Draw a trace (default: every trace read) as a waterfall.", show_options,
	"Rows: '*' on the critical path, '!' an error, '-' a log record under its span.\n",
};

struct sspan {
	uint8_t tid[16], sid[8], parent[8];
	bool has_parent;
	char *name, *service;
	uint64_t start, end;
	int status;
	/* tree */
	int first_child, next_sibling, depth;
	bool critical, placed;
};

struct slog {
	uint8_t tid[16], sid[8];
	bool has_span;
	uint64_t time;
	int severity;
	char *text, *body;
};

struct model {
	struct sspan *s;
	size_t ns, caps;
	struct slog *l;
	size_t nl, capl;
};

static char *xdup(const char *s)
{
	char *d = strdup(s ? s : "");
	INVARIANT(d != NULL);
	return d;
}

static const char *service_of(const struct trace_attrs *res)
{
	const struct trace_attr *a = trace_attr_get(res, "service.name");
	return a && a->type == TRACE_ATTR_STRING ? a->v.s : "?";
}

static int add_cb(void *ud, const struct otlp_item *it)
{
	struct model *m = ud;
	if (it->span) {
		if (m->ns == m->caps) {
			m->caps = m->caps ? 2 * m->caps : 64;
			m->s = realloc(m->s, m->caps * sizeof *m->s);
			INVARIANT(m->s != NULL);
		}
		const struct trace_span *sp = it->span;
		struct sspan *s = &m->s[m->ns++];
		memset(s, 0, sizeof *s);
		memcpy(s->tid, sp->ctx.trace_id, 16);
		memcpy(s->sid, sp->ctx.span_id, 8);
		memcpy(s->parent, sp->parent_span_id, 8);
		s->has_parent = sp->has_parent;
		s->name = xdup(sp->name);
		s->service = xdup(service_of(it->resource));
		s->start = sp->start_ns;
		s->end = sp->end_ns < sp->start_ns ? sp->start_ns : sp->end_ns;
		s->status = sp->status;
	} else {
		if (m->nl == m->capl) {
			m->capl = m->capl ? 2 * m->capl : 64;
			m->l = realloc(m->l, m->capl * sizeof *m->l);
			INVARIANT(m->l != NULL);
		}
		const struct trace_log *lg = it->log;
		struct slog *l = &m->l[m->nl++];
		memset(l, 0, sizeof *l);
		memcpy(l->tid, lg->trace_id, 16);
		memcpy(l->sid, lg->span_id, 8);
		l->has_span = lg->has_span;
		l->time = lg->time_ns ? lg->time_ns : lg->observed_ns;
		l->severity = lg->severity;
		l->text = xdup(lg->severity_text);
		l->body = xdup(lg->body);
	}
	return 0;
}

/* One JSON text: a trace request, a log request, or something else (0). */
static int read_one(struct model *m, const char *p, size_t n)
{
	char err[256];
	const char *k = memmem(p, n < 64 ? n : 64, "\"resource", 9);
	if (!k)
		return 0;
	long r = otlp_codec_decode(OTLP_SIGNAL_TRACES, OTLP_JSON, (const uint8_t *)p, n, add_cb, m, err, sizeof err);
	if (r >= 0 && memmem(p, n < 64 ? n : 64, "\"resourceLogs\"", 14))
		r = otlp_codec_decode(OTLP_SIGNAL_LOGS, OTLP_JSON, (const uint8_t *)p, n, add_cb, m, err, sizeof err);
	if (r < 0) {
		cli_error("skipping a request that cannot be read: %s", err);
		return -1;
	}
	return 0;
}

static void read_input(struct model *m, const char *text, size_t len)
{
	/* a whole file that is one JSON text (pretty-printed OTLP) */
	const char *q = text;
	while (q < text + len && (*q == ' ' || *q == '\n' || *q == '\t' || *q == '\r'))
		q++;
	json_value *whole = q < text + len && *q == '{' ? json_parse(text, len, NULL) : NULL;
	if (whole) {
		json_free(whole);
		read_one(m, q, len - (size_t)(q - text));
		return;
	}
	for (const char *p = text; p < text + len;) {
		const char *nl = memchr(p, '\n', (size_t)(text + len - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
		if (n)
			read_one(m, p, n);
		p += n + 1;
	}
}

static void fmt_dur(uint64_t ns, char *out, size_t cap)
{
	if (ns == 0)
		snprintf(out, cap, "0");
	else if (ns < 1000)
		snprintf(out, cap, "%llu ns", (unsigned long long)ns);
	else if (ns < 1000000)
		snprintf(out, cap, "%.1f us", ns / 1e3);
	else if (ns < 1000000000)
		snprintf(out, cap, "%.1f ms", ns / 1e6);
	else
		snprintf(out, cap, "%.2f s", ns / 1e9);
}

struct trace_view {
	int *idx;        /* spans of the trace, in drawing order */
	int n;
	uint64_t t0, t1;
	int services;
};

static int by_start(const void *a, const void *b, void *ud)
{
	const struct sspan *s = ud;
	const struct sspan *x = &s[*(const int *)a], *y = &s[*(const int *)b];
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return *(const int *)a - *(const int *)b;
}

/* Depth-first order from each root; children sorted by start. */
static void place(struct model *m, struct trace_view *v, int i, int depth)
{
	struct sspan *s = &m->s[i];
	if (s->placed)
		return;
	s->placed = true;
	s->depth = depth > SHOW_MAX_DEPTH ? SHOW_MAX_DEPTH : depth;
	v->idx[v->n++] = i;
	for (int c = s->first_child; c >= 0; c = m->s[c].next_sibling)
		place(m, v, c, depth + 1);
}

/* Mark the critical path under span i: the child that ends last. */
static void mark_critical(struct model *m, int i)
{
	for (int guard = 0; i >= 0 && guard < 100000; guard++) {
		m->s[i].critical = true;
		int best = -1;
		for (int c = m->s[i].first_child; c >= 0; c = m->s[c].next_sibling)
			if (best < 0 || m->s[c].end > m->s[best].end)
				best = c;
		i = best;
	}
}

static void build_view(struct model *m, const int *members, int n, struct trace_view *v)
{
	/* link children in start order: members are sorted by start */
	for (int k = 0; k < n; k++) {
		m->s[members[k]].first_child = m->s[members[k]].next_sibling = -1;
		m->s[members[k]].placed = false;
	}
	INVARIANT(n >= 0);
	size_t nn = (size_t)(unsigned)n;   /* (says to the compiler that n is not negative) */
	int *last_child = malloc((nn ? nn : 1) * sizeof *last_child);
	INVARIANT(last_child != NULL);
	for (int k = 0; k < n; k++)
		last_child[k] = -1;
	bool *is_root = calloc(nn ? nn : 1, sizeof *is_root);
	INVARIANT(is_root != NULL);
	for (int k = 0; k < n; k++) {
		struct sspan *s = &m->s[members[k]];
		int pk = -1;
		if (s->has_parent)
			for (int j = 0; j < n; j++)
				if (j != k && !memcmp(m->s[members[j]].sid, s->parent, 8)) {
					pk = j;
					break;
				}
		if (pk < 0) {
			is_root[k] = true;
			continue;
		}
		if (last_child[pk] < 0)
			m->s[members[pk]].first_child = members[k];
		else
			m->s[last_child[pk]].next_sibling = members[k];
		last_child[pk] = members[k];
	}
	v->idx = malloc((size_t)n * sizeof *v->idx);
	INVARIANT(v->idx != NULL);
	v->n = 0;
	for (int k = 0; k < n; k++)
		if (is_root[k]) {
			mark_critical(m, members[k]);
			place(m, v, members[k], 0);
		}
	for (int k = 0; k < n; k++) /* a cycle of parents: drawn flat */
		if (!m->s[members[k]].placed)
			place(m, v, members[k], 0);
	v->t0 = UINT64_MAX;
	v->t1 = 0;
	for (int k = 0; k < n; k++) {
		struct sspan *s = &m->s[members[k]];
		if (s->start < v->t0)
			v->t0 = s->start;
		if (s->end > v->t1)
			v->t1 = s->end;
	}
	v->services = 0;
	for (int k = 0; k < n; k++) {
		int seen = 0;
		for (int j = 0; j < k && !seen; j++)
			seen = !strcmp(m->s[members[j]].service, m->s[members[k]].service);
		v->services += !seen;
	}
	free(last_child);
	free(is_root);
}

static int col(uint64_t t, const struct trace_view *v)
{
	uint64_t span = v->t1 > v->t0 ? v->t1 - v->t0 : 1;
	if (t < v->t0)
		t = v->t0;
	if (t > v->t1)
		t = v->t1;
	int c = (int)((double)(t - v->t0) * SHOW_BAR / (double)span);
	return c >= SHOW_BAR ? SHOW_BAR - 1 : c;
}

static void print_text(FILE *f, const struct model *m, const struct trace_view *v, const char *tid_hex)
{
	char d[32], st[32];
	fmt_dur(v->t1 - v->t0, d, sizeof d);
	fprintf(f, "trace %s  %d span%s  %d service%s  %s\n", tid_hex, v->n, v->n == 1 ? "" : "s", v->services,
	        v->services == 1 ? "" : "s", d);
	for (int k = 0; k < v->n; k++) {
		const struct sspan *s = &m->s[v->idx[k]];
		char name[128];
		int ind = 2 * s->depth;
		snprintf(name, sizeof name, "%*s%s", ind, "", s->name);
		fmt_dur(s->start - v->t0, st, sizeof st);
		fmt_dur(s->end - s->start, d, sizeof d);
		char bar[SHOW_BAR + 1];
		memset(bar, ' ', SHOW_BAR);
		bar[SHOW_BAR] = '\0';
		int a = col(s->start, v), b = col(s->end, v);
		for (int c = a; c <= b; c++)
			bar[c] = s->status == TRACE_STATUS_ERROR ? '!' : s->critical ? '#' : '=';
		fprintf(f, "%c%c %-32.32s %-14.14s %10s %10s |%s|\n", s->critical ? '*' : ' ',
		        s->status == TRACE_STATUS_ERROR ? '!' : ' ', name, s->service, st, d, bar);
		/* the records of this span, in time order (they were read in order) */
		for (size_t j = 0; j < m->nl; j++) {
			const struct slog *l = &m->l[j];
			if (!l->has_span || memcmp(l->sid, s->sid, 8) || memcmp(l->tid, s->tid, 16))
				continue;
			char line[128];
			snprintf(line, sizeof line, "%*s- %s %s", ind + 2, "", l->text[0] ? l->text : "LOG", l->body);
			memset(bar, ' ', SHOW_BAR);
			bar[col(l->time, v)] = '|';
			fmt_dur(l->time > v->t0 ? l->time - v->t0 : 0, st, sizeof st);
			fprintf(f, "   %-47.47s %10s %10s |%s|\n", line, st, "", bar);
		}
	}
}

static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '<')
			fputs("&lt;", f);
		else if (*s == '>')
			fputs("&gt;", f);
		else if (*s == '&')
			fputs("&amp;", f);
		else if (*s == '"')
			fputs("&quot;", f);
		else if ((unsigned char)*s >= 0x20 || *s == '\t')
			fputc(*s, f);
	}
}

static void print_svg(FILE *f, const struct model *m, struct trace_view *views, int nv, char (*hex)[33])
{
	int rows = 0;
	for (int t = 0; t < nv; t++)
		rows += views[t].n + 2;
	const int W = 1000, label = 360, rh = 20;
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"monospace\" "
	        "font-size=\"12\">\n", W, rows * rh + 10);
	int y = 0;
	for (int t = 0; t < nv; t++) {
		struct trace_view *v = &views[t];
		char d[32];
		fmt_dur(v->t1 - v->t0, d, sizeof d);
		fprintf(f, "<text x=\"4\" y=\"%d\" font-weight=\"bold\">trace %s (%s)</text>\n", y * rh + 15, hex[t], d);
		y++;
		double span = v->t1 > v->t0 ? (double)(v->t1 - v->t0) : 1;
		for (int k = 0; k < v->n; k++, y++) {
			const struct sspan *s = &m->s[v->idx[k]];
			double x0 = label + (W - label - 10) * (double)(s->start - v->t0) / span;
			double w = (W - label - 10) * (double)(s->end - s->start) / span;
			const char *fill = s->status == TRACE_STATUS_ERROR ? "#d62728" : s->critical ? "#1f77b4" : "#9ecae1";
			fprintf(f, "<text x=\"%d\" y=\"%d\">", 4 + 12 * s->depth, y * rh + 15);
			xml_text(f, s->name);
			fputs(" (", f);
			xml_text(f, s->service);
			fmt_dur(s->end - s->start, d, sizeof d);
			fprintf(f, ", %s)</text>\n", d);
			fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"%s><title>", x0,
			        y * rh + 3, w < 1 ? 1 : w, rh - 6, fill, s->critical ? " stroke=\"#000\"" : "");
			xml_text(f, s->name);
			fputs("</title></rect>\n", f);
			for (size_t j = 0; j < m->nl; j++) {
				const struct slog *l = &m->l[j];
				if (!l->has_span || memcmp(l->sid, s->sid, 8) || memcmp(l->tid, s->tid, 16))
					continue;
				double lx = label + (W - label - 10) * (double)((l->time > v->t0 ? l->time : v->t0) - v->t0) / span;
				fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#ff7f0e\"><title>", lx, lx,
				        y * rh + 1, y * rh + rh - 1);
				xml_text(f, l->body);
				fputs("</title></line>\n", f);
			}
		}
		y++;
	}
	fputs("</svg>\n", f);
}

struct show_opts {
	const char *svg, *file;
};

static int on_show_option(void *ctx, int id, const char *arg)
{
	struct show_opts *o = ctx;
	if (id == OPT_SVG)
		o->svg = arg;
	else if (id == OPT_FILE)
		o->file = arg;
	return 0;
}

int cmd_show(int argc, char **argv)
{
	struct show_opts o = {.file = getenv("DSYS_TRACE_FILE")};
	int first;
	int r = cli_parse(&show_spec, argc, argv, on_show_option, &o, &first);
	if (r >= 0)
		return r;
	const char *svg = o.svg, *file = o.file;
	uint8_t want[16];
	bool one = false;
	if (first < argc) {
		if (first + 1 < argc) {
			cli_error("unexpected argument '%s'", argv[first + 1]);
			return EXIT_USAGE;
		}
		if (trace_unhex(argv[first], strlen(argv[first]), want, 16) < 0) {
			cli_error("invalid trace id '%s': expected 32 lower-case hex digits", argv[first]);
			return EXIT_USAGE;
		}
		one = true;
	}
	struct buf in = BUF_INIT;
	int rc;
	if (file && *file && strcmp(file, "-"))
		rc = buf_read_file(&in, file, SHOW_MAX_INPUT);
	else
		rc = buf_read_file(&in, "/dev/stdin", SHOW_MAX_INPUT);
	if (rc < 0) {
		cli_error("cannot read '%s': %s", file && *file ? file : "-", strerror(-rc));
		buf_free(&in);
		return EXIT_USAGE;
	}
	struct model m = {0};
	read_input(&m, in.data ? in.data : "", in.len);
	buf_free(&in);

	/* traces in the order of their first span's start */
	int *order = malloc((m.ns ? m.ns : 1) * sizeof *order);
	INVARIANT(order != NULL);
	for (size_t i = 0; i < m.ns; i++)
		order[i] = (int)i;
	qsort_r(order, m.ns, sizeof *order, by_start, m.s);
	struct trace_view *views = calloc(m.ns ? m.ns : 1, sizeof *views);
	char (*hex)[33] = calloc(m.ns ? m.ns : 1, sizeof *hex);
	int *members = malloc((m.ns ? m.ns : 1) * sizeof *members);
	bool *done = calloc(m.ns ? m.ns : 1, sizeof *done);
	INVARIANT(views && hex && members && done);
	int nv = 0;
	for (size_t k = 0; k < m.ns; k++) {
		int i = order[k];
		if (done[i] || (one && memcmp(m.s[i].tid, want, 16)))
			continue;
		int n = 0;
		for (size_t j = k; j < m.ns; j++)
			if (!done[order[j]] && !memcmp(m.s[order[j]].tid, m.s[i].tid, 16)) {
				done[order[j]] = true;
				members[n++] = order[j];
			}
		build_view(&m, members, n, &views[nv]);
		trace_hex(m.s[i].tid, 16, hex[nv]);
		nv++;
	}
	int status = EXIT_OK;
	if (nv == 0) {
		if (one)
			cli_error("no span of trace '%s' was read", argv[first]);
		else
			cli_error("no span was read");
		status = EXIT_NO;
	}
	for (int t = 0; t < nv; t++) {
		if (t)
			putchar('\n');
		print_text(stdout, &m, &views[t], hex[t]);
	}
	if (fflush(stdout) == EOF && status == EXIT_OK)
		status = EXIT_NO;
	if (svg && nv) {
		FILE *f = fopen(svg, "w");
		if (!f) {
			cli_error("cannot write '%s': %s", svg, strerror(errno));
			status = EXIT_UNREACHABLE;
		} else {
			print_svg(f, &m, views, nv, hex);
			if (fclose(f) == EOF) {
				cli_error("cannot write '%s': %s", svg, strerror(errno));
				status = EXIT_UNREACHABLE;
			}
		}
	}
	for (int t = 0; t < nv; t++)
		free(views[t].idx);
	for (size_t i = 0; i < m.ns; i++) {
		free(m.s[i].name);
		free(m.s[i].service);
	}
	for (size_t i = 0; i < m.nl; i++) {
		free(m.l[i].text);
		free(m.l[i].body);
	}
	free(m.s);
	free(m.l);
	free(order);
	free(views);
	free(hex);
	free(members);
	free(done);
	return status;
}
