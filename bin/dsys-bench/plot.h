/* plot.h -- --plot and `dsys-bench plot` (see plot.c). */
#ifndef DSYS_BENCH_PLOT_H
#define DSYS_BENCH_PLOT_H

#include <stddef.h>

#include "base/hist.h"

struct plot_series {
	const char *name;
	const struct hist *hist;
};

/* Write a chart of histograms to path; prints its own error, returns 0 or -1. */
int plot_write_hists(const char *path, const struct plot_series *s, size_t n);

/* `dsys-bench plot RESULT.json... -o FILE.svg`; returns the exit code. */
int plot_main(int argc, char **argv);

#endif
