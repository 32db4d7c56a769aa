/*
 * dsys-trace.h -- what the files of dsys-trace share: the entry point of
 * each command beyond main.c's, and the resource every command reports.
 */
#ifndef DSYS_TRACE_PROG_H
#define DSYS_TRACE_PROG_H

#include "obs/trace.h"

/* The resource of this process (service.name, OTEL_RESOURCE_ATTRIBUTES);
 * a bad OTEL_RESOURCE_ATTRIBUTES is reported and ignored. */
void resource_init(struct trace_attrs *res);

int cmd_log(int argc, char **argv);
int cmd_collect(int argc, char **argv);
int cmd_show(int argc, char **argv);

#endif
