/*
 * obs/svg_plot.h -- latency-by-percentile charts as SVG, the way HdrHistogram
 * plots are drawn: the percentile axis is logarithmic in 1/(1 - p), so
 * 90%, 99%, 99.9% and 99.99% sit at equal distances and the tail -- where
 * the interesting latencies are -- gets as much room as the median.
 *
 * One chart holds several series (one per run), so two servers or two
 * configurations can be compared at a glance.  The output is plain SVG 1.1
 * text appended to a struct buf; no fonts or scripts are referenced.
 *
 * Ownership: the caller owns the series and the buf.  No global state.
 */
#ifndef DSYS_SVG_PLOT_H
#define DSYS_SVG_PLOT_H

#include <stddef.h>

#include "base/buf.h"

struct svg_plot_point {
	double percentile;   /* 0 .. 100 */
	double value;        /* latency in microseconds */
};

struct svg_plot_series {
	const char *name;                    /* legend text */
	const struct svg_plot_point *points; /* ascending percentile */
	size_t n;
};

#define SVG_PLOT_MAX_SERIES 16

/* Append a complete SVG document.  Returns 0, or -EINVAL for no series,
 * more than SVG_PLOT_MAX_SERIES, or a series without points. */
int svg_plot_percentiles(struct buf *out, const char *title,
                         const struct svg_plot_series *series, size_t n);

#endif
