/*
 * obs/svg_plot.c -- the latency-by-percentile chart.
 *
 * Axes.  x = log10(1 / (1 - p/100)): 0% at 0, 90% at 1, 99% at 2, 99.9%
 * at 3 ...; the axis ends at the first whole decade past the highest
 * percentile below 100% in any series (at least 99%, at most 99.9999%),
 * and points at 100% (the maximum) are drawn at that end.  y is linear
 * from 0 to a rounded-up maximum (1, 2 or 5 times a power of ten), in
 * microseconds or, from 10 ms up, milliseconds.
 *
 * Each series is one polyline with a colour from a fixed palette and a
 * legend entry; text is escaped for XML.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "obs/svg_plot.h"

#define W 900
#define H 520
#define ML 80   /* margins: left, right, top, bottom */
#define MR 30
#define MT 50
#define MB 70

static const char *palette[] = {
	"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
	"#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};

static void xml_text(struct buf *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': buf_puts(out, "&lt;"); break;
		case '>': buf_puts(out, "&gt;"); break;
		case '&': buf_puts(out, "&amp;"); break;
		case '"': buf_puts(out, "&quot;"); break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				buf_putc(out, *s);
		}
	}
}

static double nice_ceil(double v)
{
	if (v <= 0)
		return 1;
	double p = pow(10, floor(log10(v)));
	double m = v / p;
	double n = m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10;
	return n * p;
}

static double px_x(double p, double decades)
{
	double x = p >= 100 ? decades : log10(1.0 / (1.0 - p / 100.0));
	if (x > decades)
		x = decades;
	return ML + x / decades * (W - ML - MR);
}

static double px_y(double v, double ymax)
{
	return MT + (1.0 - v / ymax) * (H - MT - MB);
}

int svg_plot_percentiles(struct buf *out, const char *title,
                         const struct svg_plot_series *series, size_t n)
{
	if (n == 0 || n > SVG_PLOT_MAX_SERIES)
		return -EINVAL;
	double pmax = 99, vmax = 0;
	for (size_t i = 0; i < n; i++) {
		if (series[i].n == 0)
			return -EINVAL;
		for (size_t j = 0; j < series[i].n; j++) {
			const struct svg_plot_point *pt = &series[i].points[j];
			if (pt->percentile < 100 && pt->percentile > pmax)
				pmax = pt->percentile;
			if (pt->value > vmax)
				vmax = pt->value;
		}
	}
	double decades = ceil(log10(1.0 / (1.0 - pmax / 100.0)) - 1e-9);
	if (decades < 2)
		decades = 2;
	if (decades > 6)
		decades = 6;
	bool ms = vmax >= 10000;
	double unit = ms ? 1000 : 1;
	double ymax = nice_ceil(vmax / unit) * unit;
	if (ymax <= 0)
		ymax = 1;

	buf_printf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	           "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
	           W, H, W, H);
	buf_printf(out, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
	buf_printf(out, "<text x=\"%d\" y=\"28\" font-size=\"16\" text-anchor=\"middle\">", W / 2);
	xml_text(out, title ? title : "Latency by percentile");
	buf_puts(out, "</text>\n");
	/* grid and ticks: x at each decade */
	for (int d = 0; d <= (int)decades; d++) {
		double p = 100.0 * (1.0 - pow(10, -d));
		double x = px_x(p, decades);
		buf_printf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n",
		           x, MT, x, H - MB);
		char label[32];
		if (d == 0)
			snprintf(label, sizeof label, "0%%");
		else
			snprintf(label, sizeof label, "%.*f%%", d > 2 ? d - 2 : 0, p);
		buf_printf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
		           x, H - MB + 18, label);
	}
	for (int k = 0; k <= 5; k++) {
		double v = ymax * k / 5;
		double y = px_y(v, ymax);
		buf_printf(out, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
		           ML, y, W - MR, y);
		buf_printf(out, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
		           ML - 6, y + 4, v / unit);
	}
	buf_printf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n",
	           ML, MT, W - ML - MR, H - MT - MB);
	buf_printf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">percentile</text>\n",
	           (ML + W - MR) / 2, H - MB + 40);
	buf_printf(out, "<text x=\"18\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 18 %d)\">"
	           "latency (%s)</text>\n", (MT + H - MB) / 2, (MT + H - MB) / 2, ms ? "ms" : "us");
	for (size_t i = 0; i < n; i++) {
		const char *color = palette[i % (sizeof palette / sizeof palette[0])];
		buf_printf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color);
		for (size_t j = 0; j < series[i].n; j++) {
			const struct svg_plot_point *pt = &series[i].points[j];
			buf_printf(out, "%s%.1f,%.1f", j ? " " : "", px_x(pt->percentile, decades),
			           px_y(pt->value, ymax));
		}
		buf_puts(out, "\"/>\n");
		int ly = MT + 16 + (int)i * 18;
		buf_printf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>\n",
		           ML + 12, ly - 4, ML + 36, ly - 4, color);
		buf_printf(out, "<text x=\"%d\" y=\"%d\">", ML + 42, ly);
		xml_text(out, series[i].name ? series[i].name : "");
		buf_puts(out, "</text>\n");
	}
	buf_puts(out, "</svg>\n");
	return 0;
}
