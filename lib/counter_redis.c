/* counter_redis.c -- redis counters (being written). */
#include <errno.h>
#include "counter.h"
int counter_redis_open(const struct store_url *u, const struct counter_options *o,
                       struct counter_store **out)
{
	return -EPROTONOSUPPORT;
}
