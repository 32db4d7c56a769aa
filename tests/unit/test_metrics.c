/*
 * test_metrics.c -- the registry writes exactly the exposition Prometheus
 * expects (checked line by line against a literal, and by a parser-like
 * validator of text format 0.0.4, since promtool is not installed), and
 * counts exactly when several threads update it at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/buf.h"
#include "obs/metrics.h"
#include "tap.h"

/* ---- a validator for text format 0.0.4 ------------------------------------ */

static char verr[256];

static bool is_name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
		return true;
	if (colon && c == ':')
		return true;
	return !first && c >= '0' && c <= '9';
}

/* Reads a name at *p; returns its length (0 when there is none). */
static size_t scan_name(const char *p, bool colon)
{
	size_t n = 0;
	while (p[n] && is_name_char(p[n], n == 0, colon))
		n++;
	return n;
}

/* A float as Go's ParseFloat takes it (what Prometheus uses). */
static bool parse_value(const char *s, double *v)
{
	if (!strcmp(s, "+Inf") || !strcmp(s, "Inf")) {
		*v = INFINITY;
		return true;
	}
	if (!strcmp(s, "-Inf")) {
		*v = -INFINITY;
		return true;
	}
	if (!strcmp(s, "NaN")) {
		*v = NAN;
		return true;
	}
	for (const char *c = s; *c; c++)
		if (!strchr("0123456789.eE+-", *c))
			return false;
	char *end;
	*v = strtod(s, &end);
	return *s && *end == '\0';
}

struct fam_seen {
	char name[128];
	char type[16];
	bool help, typed;
};

#define MAX_FAMS 64
#define MAX_SERIES 512

/*
 * Checks the whole text: every line ends in \n, no blank lines; HELP and
 * TYPE at most once per name, TYPE before its samples; a family's samples
 * contiguous; names and label names valid, label values with only \\ \" \n
 * escapes, no label repeated in a sample, no sample (name + labels)
 * repeated; values parse as floats; histograms: le ascending, buckets
 * cumulative, the last le="+Inf" and equal to _count.  Returns true, or
 * false with verr set.
 */
static bool validate(const char *text)
{
	struct fam_seen fams[MAX_FAMS];
	int nf = 0, cur = -1;
	static char seen[MAX_SERIES][512];
	int ns = 0;
	double last_le = -INFINITY, last_bucket = 0, inf_bucket = -1;
	char hist_labels[256] = "";
	int lineno = 0;
	memset(fams, 0, sizeof(fams));
	verr[0] = '\0';

	const char *p = text;
	if (!*p) {
		snprintf(verr, sizeof(verr), "empty exposition");
		return false;
	}
	while (*p) {
		const char *nl = strchr(p, '\n');
		lineno++;
		if (!nl) {
			snprintf(verr, sizeof(verr), "line %d: no final newline", lineno);
			return false;
		}
		char line[1024];
		size_t len = (size_t)(nl - p);
		if (len == 0 || len >= sizeof(line)) {
			snprintf(verr, sizeof(verr), "line %d: empty or too long", lineno);
			return false;
		}
		memcpy(line, p, len);
		line[len] = '\0';
		p = nl + 1;
		if (line[len - 1] == ' ' || line[len - 1] == '\r') {
			snprintf(verr, sizeof(verr), "line %d: trailing whitespace", lineno);
			return false;
		}

		if (line[0] == '#') {
			bool help = !strncmp(line, "# HELP ", 7), type = !strncmp(line, "# TYPE ", 7);
			if (!help && !type)
				continue; /* a comment */
			const char *nm = line + 7;
			size_t n = scan_name(nm, true);
			if (n == 0 || n >= 128 || (nm[n] != ' ' && !(help && nm[n] == '\0'))) {
				snprintf(verr, sizeof(verr), "line %d: bad name in '%.80s'", lineno, line);
				return false;
			}
			int f;
			for (f = 0; f < nf; f++)
				if (strlen(fams[f].name) == n && !strncmp(fams[f].name, nm, n))
					break;
			if (f == nf) {
				if (nf == MAX_FAMS)
					return false;
				memcpy(fams[nf].name, nm, n);
				nf++;
			} else if (f != cur) {
				snprintf(verr, sizeof(verr), "line %d: family %.80s split", lineno, fams[f].name);
				return false;
			}
			cur = f;
			if (help) {
				if (fams[f].help || fams[f].typed) {
					snprintf(verr, sizeof(verr), "line %d: HELP repeated or after TYPE", lineno);
					return false;
				}
				fams[f].help = true;
				for (const char *c = nm + n + 1; nm[n] && *c; c++)
					if (*c == '\\' && c[1] != '\\' && c[1] != 'n') {
						snprintf(verr, sizeof(verr), "line %d: bad escape in HELP", lineno);
						return false;
					} else if (*c == '\\') {
						c++;
					}
			} else {
				const char *t = nm + n + 1;
				if (fams[f].typed || (strcmp(t, "counter") && strcmp(t, "gauge") &&
						      strcmp(t, "histogram") && strcmp(t, "summary") &&
						      strcmp(t, "untyped"))) {
					snprintf(verr, sizeof(verr), "line %d: bad or repeated TYPE", lineno);
					return false;
				}
				fams[f].typed = true;
				snprintf(fams[f].type, sizeof(fams[f].type), "%s", t);
				last_le = -INFINITY;
				last_bucket = 0;
				inf_bucket = -1;
			}
			continue;
		}

		/* A sample: name{labels} value */
		size_t n = scan_name(line, true);
		if (n == 0) {
			snprintf(verr, sizeof(verr), "line %d: no metric name", lineno);
			return false;
		}
		char name[128];
		memcpy(name, line, n);
		name[n] = '\0';
		if (cur < 0 || !fams[cur].typed) {
			snprintf(verr, sizeof(verr), "line %d: sample before TYPE", lineno);
			return false;
		}
		const char *fname = fams[cur].name;
		size_t fl = strlen(fname);
		const char *suffix = "";
		bool hist = !strcmp(fams[cur].type, "histogram");
		if (strncmp(name, fname, fl) != 0) {
			snprintf(verr, sizeof(verr), "line %d: %.80s outside its family", lineno, name);
			return false;
		}
		suffix = name + fl;
		if (hist ? (strcmp(suffix, "_bucket") && strcmp(suffix, "_sum") && strcmp(suffix, "_count"))
			 : *suffix != '\0') {
			snprintf(verr, sizeof(verr), "line %d: %.80s does not belong to %.80s", lineno, name, fname);
			return false;
		}

		const char *q = line + n;
		char labels[256] = "", le[64] = "";
		size_t ll = 0;
		char lnames[16][64];
		int nl_ = 0;
		if (*q == '{') {
			q++;
			while (*q != '}') {
				size_t k = scan_name(q, false);
				if (k == 0 || k >= 64 || q[k] != '=' || q[k + 1] != '"') {
					snprintf(verr, sizeof(verr), "line %d: bad label at '%.80s'", lineno, q);
					return false;
				}
				for (int j = 0; j < nl_; j++)
					if (strlen(lnames[j]) == k && !strncmp(lnames[j], q, k)) {
						snprintf(verr, sizeof(verr), "line %d: label repeated", lineno);
						return false;
					}
				if (nl_ == 16)
					return false;
				memcpy(lnames[nl_], q, k);
				lnames[nl_++][k] = '\0';
				bool is_le = k == 2 && !strncmp(q, "le", 2);
				const char *vstart = q + k + 2, *v = vstart;
				while (*v && *v != '"') {
					if (*v == '\\') {
						if (v[1] != '\\' && v[1] != '"' && v[1] != 'n') {
							snprintf(verr, sizeof(verr), "line %d: bad escape in label value", lineno);
							return false;
						}
						v++;
					}
					v++;
				}
				if (*v != '"') {
					snprintf(verr, sizeof(verr), "line %d: unterminated label value", lineno);
					return false;
				}
				if (is_le) {
					size_t vl = (size_t)(v - vstart);
					if (vl >= sizeof(le))
						return false;
					memcpy(le, vstart, vl);
					le[vl] = '\0';
				} else {
					size_t add = (size_t)(v + 1 - q);
					if (ll + add + 1 >= sizeof(labels))
						return false;
					memcpy(labels + ll, q, add);
					ll += add;
					labels[ll++] = ',';
					labels[ll] = '\0';
				}
				q = v + 1;
				if (*q == ',')
					q++;
				else if (*q != '}') {
					snprintf(verr, sizeof(verr), "line %d: expected , or }", lineno);
					return false;
				}
			}
			q++;
		}
		if (*q != ' ') {
			snprintf(verr, sizeof(verr), "line %d: expected a space before the value", lineno);
			return false;
		}
		q++;
		double val;
		char vtext[64];
		const char *sp = strchr(q, ' ');
		size_t vl = sp ? (size_t)(sp - q) : strlen(q);
		if (vl == 0 || vl >= sizeof(vtext))
			return false;
		memcpy(vtext, q, vl);
		vtext[vl] = '\0';
		if (!parse_value(vtext, &val)) {
			snprintf(verr, sizeof(verr), "line %d: bad value '%.80s'", lineno, vtext);
			return false;
		}
		if (sp) { /* an optional timestamp: an integer */
			for (const char *c = sp + 1; *c; c++)
				if (!(*c >= '0' && *c <= '9') && !(c == sp + 1 && *c == '-')) {
					snprintf(verr, sizeof(verr), "line %d: bad timestamp", lineno);
					return false;
				}
		}

		/* No series twice. */
		char key[512];
		snprintf(key, sizeof(key), "%s{%sle=%s}", name, labels, le);
		for (int j = 0; j < ns; j++)
			if (!strcmp(seen[j], key)) {
				snprintf(verr, sizeof(verr), "line %d: series repeated", lineno);
				return false;
			}
		if (ns < MAX_SERIES)
			snprintf(seen[ns++], sizeof(seen[0]), "%s", key);

		if (hist) {
			if (strcmp(labels, hist_labels) != 0) {
				/* a new series of the family starts with its buckets */
				if (strcmp(suffix, "_bucket")) {
					snprintf(verr, sizeof(verr), "line %d: histogram series without buckets", lineno);
					return false;
				}
				snprintf(hist_labels, sizeof(hist_labels), "%s", labels);
				last_le = -INFINITY;
				last_bucket = 0;
				inf_bucket = -1;
			}
			if (!strcmp(suffix, "_bucket")) {
				double lev;
				if (!*le || !parse_value(le, &lev) || !(lev > last_le) || val < last_bucket) {
					snprintf(verr, sizeof(verr), "line %d: buckets not ascending or not cumulative", lineno);
					return false;
				}
				last_le = lev;
				last_bucket = val;
				if (isinf(lev))
					inf_bucket = val;
			} else if (*le) {
				snprintf(verr, sizeof(verr), "line %d: le outside _bucket", lineno);
				return false;
			} else if (!strcmp(suffix, "_count") && val != inf_bucket) {
				snprintf(verr, sizeof(verr), "line %d: _count is not the +Inf bucket", lineno);
				return false;
			}
		} else if (*le && !strcmp(fams[cur].type, "histogram")) {
			return false;
		}
	}
	return true;
}

/* Validates, then reports (the reason, when there is one). */
#define ok_valid(text, what) do { \
	bool v_ = validate(text); \
	if (!ok(v_, what)) \
		diag("validator: %s", verr); \
} while (0)

/* Compares line by line, naming the first line that differs. */
static void is_text(const char *got, const char *want, const char *what)
{
	int line = 1;
	const char *g = got, *w = want;
	while (*g && *w && *g == *w) {
		if (*g == '\n')
			line++;
		g++, w++;
	}
	if (!tap_ok(*g == '\0' && *w == '\0', __FILE__, __LINE__, "%s", what)) {
		const char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
		while (g > got && g[-1] != '\n')
			g--;
		while (w > want && w[-1] != '\n')
			w--;
		printf("#   first difference at line %d\n#   got:  %.*s\n#   want: %.*s\n", line,
		       (int)(ge ? ge - g : (long)strlen(g)), g, (int)(we ? we - w : (long)strlen(w)), w);
	}
}

/* ---- the exposition ------------------------------------------------------------ */

static double ret_double(void *arg)
{
	return *(double *)arg;
}

static void test_exposition(void)
{
	struct metrics *reg = metrics_new();
	struct metrics_counter *hello = metrics_counter_register(reg, "http_requests_total",
		"Requests answered.", METRICS_LABELS("route", "/hello", "code", "200"));
	struct metrics_counter *up = metrics_counter_register(reg, "dsys_starts_total",
		"Starts, no labels.", NULL);
	struct metrics_counter *miss = metrics_counter_register(reg, "http_requests_total",
		"ignored: the first help wins", METRICS_LABELS("route", "/hello", "code", "404"));
	struct metrics_gauge *inflight = metrics_gauge_register(reg, "dsys_in_flight",
		"Requests in flight.", NULL);
	static double ratio = 0.25;
	is_int(metrics_gauge_fn_register(reg, "dsys_ratio", "A ratio.", NULL, ret_double, &ratio), 0,
	       "a callback gauge registers");
	static const double bounds[] = {0.1, 0.25, 1, 2.5};
	struct metrics_histogram *lat = metrics_histogram_register(reg, "dsys_latency_seconds",
		"Latency.", METRICS_LABELS("route", "/hello"), bounds, 4);
	struct metrics_counter *esc = metrics_counter_register(reg, "dsys_escape_total",
		"Back\\slash and\nnewline \"quoted\".", METRICS_LABELS("path", "a\\b\"c\nd"));
	struct metrics_histogram *deflt = metrics_histogram_register(reg, "dsys_default_seconds",
		"", NULL, NULL, 0);
	ok(hello && up && miss && inflight && lat && esc && deflt, "every series registers");
	ok(miss != hello, "another label set is another series");
	ok(metrics_counter_register(reg, "http_requests_total", "x",
		METRICS_LABELS("route", "/hello", "code", "200")) == hello,
	   "registering the same name and labels again finds the same series");

	metrics_counter_add(hello, 3);
	metrics_counter_inc(miss);
	metrics_counter_inc(up);
	metrics_counter_add(esc, 18446744073709551615ULL);
	metrics_gauge_set(inflight, 5);
	metrics_gauge_add(inflight, -2);
	metrics_gauge_inc(inflight);
	metrics_gauge_dec(inflight);
	metrics_histogram_observe(lat, 0.125);
	metrics_histogram_observe(lat, 0.25);   /* le is inclusive */
	metrics_histogram_observe(lat, 0.25);
	metrics_histogram_observe(lat, 0.5);
	metrics_histogram_observe(lat, 3);
	metrics_histogram_observe_ns(deflt, 1500000);

	struct buf out = BUF_INIT;
	is_int(metrics_render(reg, &out), 0, "render succeeds");
	const char *want =
		"# HELP http_requests_total Requests answered.\n"
		"# TYPE http_requests_total counter\n"
		"http_requests_total{route=\"/hello\",code=\"200\"} 3\n"
		"http_requests_total{route=\"/hello\",code=\"404\"} 1\n"
		"# HELP dsys_starts_total Starts, no labels.\n"
		"# TYPE dsys_starts_total counter\n"
		"dsys_starts_total 1\n"
		"# HELP dsys_in_flight Requests in flight.\n"
		"# TYPE dsys_in_flight gauge\n"
		"dsys_in_flight 3\n"
		"# HELP dsys_ratio A ratio.\n"
		"# TYPE dsys_ratio gauge\n"
		"dsys_ratio 0.25\n"
		"# HELP dsys_latency_seconds Latency.\n"
		"# TYPE dsys_latency_seconds histogram\n"
		"dsys_latency_seconds_bucket{route=\"/hello\",le=\"0.1\"} 0\n"
		"dsys_latency_seconds_bucket{route=\"/hello\",le=\"0.25\"} 3\n"
		"dsys_latency_seconds_bucket{route=\"/hello\",le=\"1\"} 4\n"
		"dsys_latency_seconds_bucket{route=\"/hello\",le=\"2.5\"} 4\n"
		"dsys_latency_seconds_bucket{route=\"/hello\",le=\"+Inf\"} 5\n"
		"dsys_latency_seconds_sum{route=\"/hello\"} 4.125\n"
		"dsys_latency_seconds_count{route=\"/hello\"} 5\n"
		"# HELP dsys_escape_total Back\\\\slash and\\nnewline \"quoted\".\n"
		"# TYPE dsys_escape_total counter\n"
		"dsys_escape_total{path=\"a\\\\b\\\"c\\nd\"} 18446744073709551615\n"
		"# TYPE dsys_default_seconds histogram\n"
		"dsys_default_seconds_bucket{le=\"0.0001\"} 0\n"
		"dsys_default_seconds_bucket{le=\"0.00025\"} 0\n"
		"dsys_default_seconds_bucket{le=\"0.0005\"} 0\n"
		"dsys_default_seconds_bucket{le=\"0.001\"} 0\n"
		"dsys_default_seconds_bucket{le=\"0.0025\"} 1\n"
		"dsys_default_seconds_bucket{le=\"0.005\"} 1\n"
		"dsys_default_seconds_bucket{le=\"0.01\"} 1\n"
		"dsys_default_seconds_bucket{le=\"0.025\"} 1\n"
		"dsys_default_seconds_bucket{le=\"0.05\"} 1\n"
		"dsys_default_seconds_bucket{le=\"0.1\"} 1\n"
		"dsys_default_seconds_bucket{le=\"0.25\"} 1\n"
		"dsys_default_seconds_bucket{le=\"0.5\"} 1\n"
		"dsys_default_seconds_bucket{le=\"1\"} 1\n"
		"dsys_default_seconds_bucket{le=\"2.5\"} 1\n"
		"dsys_default_seconds_bucket{le=\"5\"} 1\n"
		"dsys_default_seconds_bucket{le=\"10\"} 1\n"
		"dsys_default_seconds_bucket{le=\"+Inf\"} 1\n"
		"dsys_default_seconds_sum 0.0015\n"
		"dsys_default_seconds_count 1\n";
	is_text(out.data, want, "the exposition is exactly as expected, line by line");
	ok_valid(out.data, "the exposition passes the format validator");

	is_int(metrics_counter_value(hello), 3, "counter value reads back");
	is_int(metrics_gauge_value(inflight), 3, "gauge value reads back");
	is_int(metrics_histogram_count(lat), 5, "histogram count reads back");
	ok(metrics_histogram_sum(lat) == 4.125, "histogram sum reads back");

	/* Registration errors. */
	errno = 0;
	ok(metrics_gauge_register(reg, "http_requests_total", "x", NULL) == NULL && errno == EEXIST,
	   "a name registered as a counter cannot become a gauge");
	errno = 0;
	ok(metrics_counter_register(reg, "2bad", "x", NULL) == NULL && errno == EINVAL,
	   "a metric name starting with a digit is refused");
	errno = 0;
	ok(metrics_counter_register(reg, "bad-name", "x", NULL) == NULL && errno == EINVAL,
	   "a metric name with a dash is refused");
	ok(metrics_counter_register(reg, "ok_total", "x", METRICS_LABELS("__reserved", "v")) == NULL,
	   "a label name starting with __ is refused");
	ok(metrics_counter_register(reg, "ok_total", "x", METRICS_LABELS("a", "1", "a", "2")) == NULL,
	   "a label name given twice is refused");
	ok(metrics_counter_register(reg, "ok_total", "x", (const char *const[]){"a", NULL}) == NULL,
	   "an odd label list is refused");
	ok(metrics_counter_register(reg, "ok_total", "x", METRICS_LABELS("a", "\xff")) == NULL,
	   "a label value that is not UTF-8 is refused");
	ok(metrics_histogram_register(reg, "h_seconds", "x", METRICS_LABELS("le", "1"), NULL, 0) == NULL,
	   "a histogram cannot take an le label");
	static const double unsorted[] = {1, 0.5};
	ok(metrics_histogram_register(reg, "h_seconds", "x", NULL, unsorted, 2) == NULL,
	   "histogram bounds must increase");
	ok(metrics_histogram_register(reg, "dsys_latency_seconds", "x",
		METRICS_LABELS("route", "/hello"), unsorted + 1, 1) == NULL,
	   "the same histogram with other bounds is refused");
	ok(metrics_histogram_register(reg, "dsys_latency_seconds", "x",
		METRICS_LABELS("route", "/hello"), bounds, 4) == lat,
	   "the same histogram with the same bounds is found");
	is_int(metrics_gauge_fn_register(reg, "dsys_ratio", "x", NULL, ret_double, &ratio), -EEXIST,
	       "a callback series cannot be registered twice");
	ok(metrics_counter_register(reg, "ok_total", "x", METRICS_LABELS("a", "\xc3\xa9")) != NULL,
	   "a UTF-8 label value is accepted");

	buf_free(&out);
	metrics_free(reg);
	metrics_free(NULL);
}

/* Floats as client_golang writes them (strconv.FormatFloat 'g', -1). */
static void test_floats(void)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{0.25, "0.25"}, {1, "1"}, {0, "0"}, {-0.0, "0"}, {100, "100"},
		{123456, "123456"}, {1234567, "1.234567e+06"}, {1e6, "1e+06"},
		{0.0001, "0.0001"}, {0.00001, "1e-05"}, {0.1, "0.1"}, {-2.5, "-2.5"},
		{1.0 / 3, "0.3333333333333333"}, {9007199254740992.0, "9.007199254740992e+15"},
		{1e100, "1e+100"}, {5e-324, "5e-324"}, {0.000123, "0.000123"},
	};
	size_t n = sizeof(cases) / sizeof(cases[0]);
	static double vals[32];
	struct metrics *reg = metrics_new();
	char label[8];
	for (size_t i = 0; i < n; i++) {
		vals[i] = cases[i].v;
		snprintf(label, sizeof(label), "%zu", i);
		metrics_gauge_fn_register(reg, "v", "", METRICS_LABELS("i", label), ret_double, &vals[i]);
	}
	static double specials[3];
	specials[0] = NAN;
	specials[1] = INFINITY;
	specials[2] = -INFINITY;
	metrics_counter_fn_register(reg, "s_total", "", METRICS_LABELS("k", "nan"), ret_double, &specials[0]);
	metrics_counter_fn_register(reg, "s_total", "", METRICS_LABELS("k", "inf"), ret_double, &specials[1]);
	metrics_counter_fn_register(reg, "s_total", "", METRICS_LABELS("k", "-inf"), ret_double, &specials[2]);

	struct buf out = BUF_INIT;
	metrics_render(reg, &out);
	for (size_t i = 0; i < n; i++) {
		char line[96];
		snprintf(line, sizeof(line), "v{i=\"%zu\"} %s\n", i, cases[i].text);
		ok(strstr(out.data, line) != NULL, "%.17g is written %s", cases[i].v, cases[i].text);
	}
	ok(strstr(out.data, "s_total{k=\"nan\"} NaN\n") && strstr(out.data, "s_total{k=\"inf\"} +Inf\n") &&
	   strstr(out.data, "s_total{k=\"-inf\"} -Inf\n"), "NaN, +Inf and -Inf as Prometheus spells them");
	ok_valid(out.data, "and the whole passes the validator");
	buf_free(&out);
	metrics_free(reg);
}

static void test_process(void)
{
	struct metrics *reg = metrics_new();
	is_int(metrics_process_register(reg), 0, "the process collector registers in one call");
	is_int(metrics_process_register(reg), -EEXIST, "and only once");
	struct buf out = BUF_INIT;
	metrics_render(reg, &out);
	const char *names[] = {"process_cpu_seconds_total ", "process_open_fds ", "process_max_fds ",
			       "process_virtual_memory_bytes ", "process_resident_memory_bytes ",
			       "process_start_time_seconds "};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *line = strstr(out.data, names[i]);
		while (line && line > out.data && line[-1] != '\n')
			line = strstr(line + 1, names[i]);
		double v = NAN;
		if (line)
			v = strtod(line + strlen(names[i]), NULL);
		ok(line && isfinite(v) && v >= 0, "%sreads a number from /proc (%g)", names[i], v);
	}
	ok(strstr(out.data, "# TYPE process_cpu_seconds_total counter\n") != NULL,
	   "cpu seconds is a counter");
	const char *rss = strstr(out.data, "\nprocess_resident_memory_bytes ");
	ok(rss && strtod(rss + 31, NULL) > 100000, "resident memory is plausible");
	const char *start = strstr(out.data, "\nprocess_start_time_seconds ");
	double st = start ? strtod(start + 28, NULL) : 0;
	ok(st > 1.6e9 && st < 4e9, "start time is a unix time (%f)", st);
	ok_valid(out.data, "the process metrics pass the validator");
	/* open_fds counts exactly: three more descriptors, three more */
	const char *fdl = strstr(out.data, "\nprocess_open_fds ");
	double before = fdl ? strtod(fdl + 18, NULL) : -1;
	int extra[3];
	for (int i = 0; i < 3; i++)
		extra[i] = open("/dev/null", O_RDONLY);
	buf_reset(&out);
	metrics_render(reg, &out);
	fdl = strstr(out.data, "\nprocess_open_fds ");
	double after = fdl ? strtod(fdl + 18, NULL) : -1;
	ok(before > 0 && after == before + 3, "open fds counts three more after three opens (%g, %g)", before, after);
	for (int i = 0; i < 3; i++)
		close(extra[i]);
	buf_free(&out);
	metrics_free(reg);
}

/* The validator itself must be able to say no. */
static void test_validator(void)
{
	ok(validate("# TYPE a counter\na 1\n"), "validator accepts a minimal exposition");
	ok(!validate("a 1\n"), "validator rejects a sample before TYPE");
	ok(!validate("# TYPE a counter\na 1"), "validator rejects a missing final newline");
	ok(!validate("# TYPE a counter\na{x=\"\\q\"} 1\n"), "validator rejects a bad escape");
	ok(!validate("# TYPE a counter\na one\n"), "validator rejects a bad value");
	ok(!validate("# TYPE a counter\na 1\n# TYPE b gauge\nb 1\n# TYPE a counter\n"),
	   "validator rejects a repeated TYPE");
	ok(!validate("# TYPE a counter\na 1\na 2\n"), "validator rejects a repeated series");
	ok(!validate("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),
	   "validator rejects buckets that are not cumulative");
	ok(!validate("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"),
	   "validator rejects a _count unequal to +Inf");
	ok(!validate("# TYPE a counter\n# TYPE b counter\nb 1\na 1\n"),
	   "validator rejects a family split by another");
}

/* ---- threads -------------------------------------------------------------------- */

#define THREADS 4
#define ADDS 100000

struct shared {
	struct metrics *reg;
	struct metrics_counter *c;
	struct metrics_gauge *g;
	struct metrics_histogram *h;
	struct metrics_counter *found[THREADS];
};

struct worker {
	struct shared *sh;
	int id;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	sh->found[w->id] = metrics_counter_register(sh->reg, "dsys_found_total", "x",
		METRICS_LABELS("code", "503"));
	for (int i = 0; i < ADDS; i++) {
		metrics_counter_inc(sh->c);
		metrics_gauge_inc(sh->g);
		metrics_histogram_observe(sh->h, (i % 4) * 0.5);
		metrics_gauge_dec(sh->g);
		metrics_gauge_add(sh->g, 2);
		if (i % 1000 == 0) { /* scrapes while others update */
			struct buf b = BUF_INIT;
			metrics_render(sh->reg, &b);
			buf_free(&b);
		}
	}
	metrics_counter_inc(sh->found[w->id]);
	return NULL;
}

static void test_threads(void)
{
	struct shared sh = {0};
	sh.reg = metrics_new();
	sh.c = metrics_counter_register(sh.reg, "dsys_adds_total", "Adds.", NULL);
	sh.g = metrics_gauge_register(sh.reg, "dsys_level", "Level.", NULL);
	sh.h = metrics_histogram_register(sh.reg, "dsys_obs_seconds", "Obs.", NULL, NULL, 0);
	pthread_t t[THREADS];
	struct worker w[THREADS];
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){&sh, i};
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	is_int(metrics_counter_value(sh.c), THREADS * ADDS, "4 threads x 100k increments count exactly");
	is_int(metrics_gauge_value(sh.g), 2 * THREADS * ADDS, "gauge adds from 4 threads are exact");
	is_int(metrics_histogram_count(sh.h), THREADS * ADDS, "histogram observations from 4 threads are exact");
	ok(metrics_histogram_sum(sh.h) == THREADS * (ADDS / 4) * (0 + 0.5 + 1 + 1.5),
	   "histogram sum from 4 threads is exact (%f)", metrics_histogram_sum(sh.h));
	int same = 1;
	for (int i = 1; i < THREADS; i++)
		same &= sh.found[i] == sh.found[0] && sh.found[i] != NULL;
	ok(same, "concurrent find-or-create hands every thread the same series");
	is_int(metrics_counter_value(sh.found[0]), THREADS, "and it counted all of them");

	struct buf out = BUF_INIT;
	metrics_render(sh.reg, &out);
	ok(strstr(out.data, "\ndsys_adds_total 400000\n") != NULL, "the exposition shows the exact total");
	ok(strstr(out.data, "dsys_obs_seconds_bucket{le=\"+Inf\"} 400000\n") != NULL &&
	   strstr(out.data, "dsys_obs_seconds_count 400000\n") != NULL,
	   "and the histogram's +Inf bucket and count agree");
	ok_valid(out.data, "and passes the validator");
	buf_free(&out);
	metrics_free(sh.reg);
}

/* More threads than shards: the first METRICS_SHARDS - 1 own a shard (plain
 * stores), the rest share the last one (atomic RMW); all stay exact. */
#define MANY (METRICS_SHARDS + 8)
#define MANY_ADDS 20000

struct many {
	struct metrics_counter *c;
	struct metrics_histogram *h;
};

static void *many_main(void *arg)
{
	struct many *m = arg;
	for (int i = 0; i < MANY_ADDS; i++) {
		metrics_counter_inc(m->c);
		metrics_histogram_observe(m->h, (i % 2) * 0.25);
	}
	return NULL;
}

static void test_many_threads(void)
{
	struct metrics *reg = metrics_new();
	struct many m = {
		metrics_counter_register(reg, "dsys_many_total", "Many.", NULL),
		metrics_histogram_register(reg, "dsys_many_seconds", "Many.", NULL, NULL, 0),
	};
	pthread_t t[MANY];
	for (int i = 0; i < MANY; i++)
		pthread_create(&t[i], NULL, many_main, &m);
	for (int i = 0; i < MANY; i++)
		pthread_join(t[i], NULL);
	is_int(metrics_counter_value(m.c), MANY * MANY_ADDS,
	       "more threads than shards: owned and shared shards count exactly");
	is_int(metrics_histogram_count(m.h), MANY * MANY_ADDS,
	       "and so do histogram observations");
	ok(metrics_histogram_sum(m.h) == MANY * (MANY_ADDS / 2) * 0.25,
	   "and the histogram sum (%f)", metrics_histogram_sum(m.h));
	metrics_free(reg);
}

static double seven(void *arg) { return 7; }

static void test_counter_sum(void)
{
	struct metrics *reg = metrics_new();
	uint64_t sum = 99;
	is_int(metrics_counter_sum(reg, "http_requests_total", &sum), -ENOENT,
	       "a family that does not exist has no sum");
	is_int(sum, 0, "and *out is 0 then");
	metrics_counter_add(metrics_counter_register(reg, "http_requests_total", "h",
		METRICS_LABELS("route", "/a", "code", "200")), 3);
	metrics_counter_add(metrics_counter_register(reg, "http_requests_total", "h",
		METRICS_LABELS("route", "/b", "code", "404")), 4);
	metrics_counter_add(metrics_counter_register(reg, "other_total", "h", NULL), 100);
	metrics_counter_fn_register(reg, "fn_total", "h", NULL, seven, NULL);
	metrics_gauge_set(metrics_gauge_register(reg, "g", "h", NULL), 5);
	is_int(metrics_counter_sum(reg, "http_requests_total", &sum), 0, "the sum of a counter family");
	is_int(sum, 7, "adds every series of the family and no other");
	is_int(metrics_counter_sum(reg, "g", &sum), -ENOENT, "a gauge is no counter family");
	is_int(metrics_counter_sum(reg, "fn_total", &sum), 0, "a callback family is found");
	is_int(sum, 0, "but its callback series are left out");
	metrics_free(reg);
}

int main(void)
{
	test_counter_sum();
	test_validator();
	test_exposition();
	test_floats();
	test_process();
	test_threads();
	test_many_threads();
	return tap_done();
}
