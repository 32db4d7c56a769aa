/*
 * plot.c -- latency charts: --plot FILE.svg for the run just made, and
 * `dsys-bench plot a.json b.json -o cmp.svg` for results saved earlier.
 *
 * Both draw the percentile rows (HdrHistogram's levels) through
 * lib/obs/svg_plot.  A saved result is the JSON object dsys-bench printed; a
 * file may hold interval lines before it, so the last line with a
 * "percentiles" array is the one read.  Each series is named by its file's
 * name (or --title for the chart).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "base/json.h"
#include "plot.h"
#include "obs/svg_plot.h"

#define PLOT_MAX_POINTS 4096

/* The exit status of a failed write to stdout (cli_write_error's). */
static int write_status = EXIT_USAGE;

static int write_file(const char *path, const struct buf *b)
{
	FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
	if (!f) {
		cli_error("cannot write '%s': %s", path, strerror(errno));
		return -1;
	}
	size_t n = fwrite(b->data, 1, b->len, f);
	int bad = n != b->len || (f == stdout ? fflush(f) : fclose(f)) != 0;
	if (bad && f == stdout) {
		/* stdout says it as every program does: EPIPE quiet, else "write error" */
		write_status = cli_write_error(errno);
		return -1;
	}
	if (bad) {
		cli_error("cannot write '%s': %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static size_t hist_points(const struct hist *h, struct svg_plot_point *pts, size_t max)
{
	size_t n = 0;
	if (hist_count(h) == 0)
		return 0;
	struct hist_iter it;
	struct hist_row row;
	hist_iter_init(&it, h, 5);
	while (n < max && hist_iter_next(&it, &row)) {
		pts[n].percentile = row.percentile * 100;
		pts[n].value = (double)row.value;
		n++;
	}
	return n;
}

int plot_write_hists(const char *path, const struct plot_series *s, size_t n)
{
	struct svg_plot_series ss[SVG_PLOT_MAX_SERIES];
	struct svg_plot_point *pts = calloc(n * PLOT_MAX_POINTS, sizeof *pts);
	if (!pts || n > SVG_PLOT_MAX_SERIES) {
		free(pts);
		cli_error("cannot plot: too many series");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		ss[i].name = s[i].name;
		ss[i].points = pts + i * PLOT_MAX_POINTS;
		ss[i].n = hist_points(s[i].hist, pts + i * PLOT_MAX_POINTS, PLOT_MAX_POINTS);
		if (ss[i].n == 0) {
			/* nothing measured: draw a flat zero line rather than fail */
			pts[i * PLOT_MAX_POINTS] = (struct svg_plot_point){0, 0};
			ss[i].n = 1;
		}
	}
	struct buf b = BUF_INIT;
	int r = svg_plot_percentiles(&b, "Latency by percentile", ss, n);
	if (r == 0)
		r = write_file(path, &b);
	buf_free(&b);
	free(pts);
	return r;
}

/* Read the last result object of a file into points. */
static int read_result(const char *path, struct svg_plot_point *pts, size_t *n)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		cli_error("cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	char *line = NULL, *last = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		if (strstr(line, "\"percentiles\"")) {
			free(last);
			last = strdup(line);
		}
	}
	free(line);
	fclose(f);
	if (!last) {
		cli_error("'%s' holds no dsys-bench result (no \"percentiles\")", path);
		return -1;
	}
	size_t err_off = 0;
	json_value *v = json_parse(last, strlen(last), &err_off);
	free(last);
	json_value *rows = v ? json_get(v, "percentiles") : NULL;
	if (!rows) {
		cli_error("'%s': the result is not valid JSON", path);
		json_free(v);
		return -1;
	}
	*n = 0;
	for (json_value *row = rows->child; row && *n < PLOT_MAX_POINTS; row = row->next) {
		json_value *p = json_get(row, "percentile"), *l = json_get(row, "latency_us");
		if (!p || !l)
			continue;
		pts[*n].percentile = p->valuedouble;
		pts[*n].value = l->valuedouble;
		(*n)++;
	}
	json_free(v);
	if (*n == 0) {
		cli_error("'%s': the result has no percentile rows (nothing was measured)", path);
		return -1;
	}
	return 0;
}

enum { P_OUTPUT = 1, P_TITLE };

static const struct cli_option plot_options[] = {
	{"output", 'o', "FILE.svg", NULL, "where to write the chart (- for stdout)", P_OUTPUT},
	{"title", 0, "TEXT", NULL, "the chart's title", P_TITLE},
	CLI_END
};

static const struct cli_spec plot_spec = {
	"dsys-bench plot", "[OPTION]... RESULT.json...",
	"Draw saved dsys-bench results as one latency-by-percentile chart.",
	plot_options, NULL,
};

struct plot_opts {
	const char *output;
	const char *title;
};

static int on_plot_option(void *ctx, int id, const char *arg)
{
	struct plot_opts *o = ctx;
	if (id == P_OUTPUT)
		o->output = arg;
	else if (id == P_TITLE)
		o->title = arg;
	return 0;
}

int plot_main(int argc, char **argv)
{
	struct plot_opts o = {NULL, "Latency by percentile"};
	int first = 0;
	int r = cli_parse(&plot_spec, argc, argv, on_plot_option, &o, &first);
	if (r >= 0)
		return r;
	cli_set_prog("dsys-bench");   /* what went wrong past the options is the program's */
	size_t n = (size_t)(argc - first);
	if (n == 0 || !o.output) {
		cli_error(n == 0 ? "no result files given" : "no output file given (-o FILE.svg)");
		fprintf(stderr, "Try 'dsys-bench plot --help' for more information.\n");
		return EXIT_USAGE;
	}
	if (n > SVG_PLOT_MAX_SERIES) {
		cli_error("at most %d result files in one chart", SVG_PLOT_MAX_SERIES);
		return EXIT_USAGE;
	}
	struct svg_plot_point *pts = calloc(n * PLOT_MAX_POINTS, sizeof *pts);
	struct svg_plot_series ss[SVG_PLOT_MAX_SERIES];
	if (!pts)
		return EXIT_USAGE;
	for (size_t i = 0; i < n; i++) {
		const char *path = argv[first + (int)i];
		const char *base = strrchr(path, '/');
		ss[i].name = base ? base + 1 : path;
		ss[i].points = pts + i * PLOT_MAX_POINTS;
		if (read_result(path, pts + i * PLOT_MAX_POINTS, &ss[i].n) < 0) {
			free(pts);
			return EXIT_USAGE;
		}
	}
	struct buf b = BUF_INIT;
	r = svg_plot_percentiles(&b, o.title, ss, n);
	int rc = EXIT_OK;
	if (r < 0)
		rc = EXIT_USAGE;
	else if (write_file(o.output, &b) < 0)
		rc = write_status;
	buf_free(&b);
	free(pts);
	return rc;
}
