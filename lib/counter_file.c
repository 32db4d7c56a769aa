/* counter_file.c -- file: counters (being written). */
#include <errno.h>
#include "counter.h"
int counter_file_open(const char *dir, const struct counter_options *o,
                      struct counter_store **out, char *err, size_t err_size)
{
	return -EPROTONOSUPPORT;
}
