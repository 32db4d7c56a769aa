/*
 * base/parse.c -- numbers, durations, sizes, booleans and HOST:PORT from
 * text, with full validation.  Pure functions: no allocation, no output,
 * no global state, so every layer may use them (store URLs, the pacer's
 * rates, the command line).
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/parse.h"

int parse_u64(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	uint64_t v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int parse_i64(const char *s, int64_t *out)
{
	if (!s)
		return -1;
	int neg = 0;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	uint64_t u;
	if (parse_u64(s, &u) < 0)
		return -1;
	if (neg) {
		if (u > (uint64_t)INT64_MAX + 1)
			return -1;
		*out = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
	} else {
		if (u > (uint64_t)INT64_MAX)
			return -1;
		*out = (int64_t)u;
	}
	return 0;
}

int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	uint64_t v;
	if (parse_u64(s, &v) < 0 || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* A decimal number with an optional fraction, then a unit from the table.
 * Computed in long double and rounded, so "1.5s" is exactly 1500000 us. */
static int parse_scaled(const char *s, const char *const *units, const long double *scale,
                        long double bare, uint64_t *out)
{
	if (!s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return -1;
	const char *p = s;
	long double v = 0;
	int digits = 0;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p++ - '0');
		digits++;
	}
	if (*p == '.') {
		p++;
		long double f = 0.1L;
		while (*p >= '0' && *p <= '9') {
			v += f * (*p++ - '0');
			f /= 10;
			digits++;
		}
	}
	if (!digits)
		return -1;
	long double mul = -1;
	if (*p == '\0') {
		mul = bare;
	} else {
		for (int i = 0; units[i]; i++)
			if (strcmp(p, units[i]) == 0) {
				mul = scale[i];
				break;
			}
	}
	if (mul < 0)
		return -1;
	long double r = v * mul;
	if (r > 1.8e19L)
		return -1;
	*out = (uint64_t)(r + 0.5L);
	return 0;
}

int parse_duration_us(const char *s, uint64_t *out)
{
	static const char *const units[] = {"us", "ms", "s", "m", "h", NULL};
	static const long double scale[] = {1, 1e3L, 1e6L, 60e6L, 3600e6L};
	return parse_scaled(s, units, scale, 1e6L, out);
}

int parse_duration_ms(const char *s, uint64_t *out)
{
	uint64_t us;
	if (parse_duration_us(s, &us) < 0)
		return -1;
	*out = (us + 999) / 1000; /* 1us..999us round up to 1ms: never to zero */
	return 0;
}

int parse_size(const char *s, uint64_t *out)
{
	static const char *const units[] = {"b", "B", "k", "K", "kb", "KB", "KiB", "m", "M",
	                                    "mb", "MB", "MiB", "g", "G", "gb", "GB", "GiB", NULL};
	static const long double scale[] = {1, 1, 1024, 1024, 1024, 1024, 1024,
	                                    1048576.0L, 1048576.0L, 1048576.0L, 1048576.0L, 1048576.0L,
	                                    1073741824.0L, 1073741824.0L, 1073741824.0L,
	                                    1073741824.0L, 1073741824.0L};
	return parse_scaled(s, units, scale, 1, out);
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on", NULL};
	static const char *const no[] = {"0", "false", "no", "off", NULL};
	for (int i = 0; yes[i]; i++)
		if (strcasecmp(s, yes[i]) == 0)
			return *out = true, 0;
	for (int i = 0; no[i]; i++)
		if (strcasecmp(s, no[i]) == 0)
			return *out = false, 0;
	return -1;
}

int parse_hostport(const char *s, char *host, size_t host_size, uint16_t *port)
{
	const char *colon;
	const char *h = s;
	size_t hlen;
	if (!s || !*s)
		return -1;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(end - h);
		colon = end + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		if (memchr(s, ':', (size_t)(colon - s)))
			return -1; /* a bare IPv6 address needs brackets */
		hlen = (size_t)(colon - s);
	}
	unsigned p;
	if (parse_uint(colon + 1, 0, 65535, &p) < 0)
		return -1;
	if (hlen == 0) {
		h = "0.0.0.0";
		hlen = 7;
	}
	if (hlen + 1 > host_size)
		return -1;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	*port = (uint16_t)p;
	return 0;
}
