/*
 * base/parse.h -- the one parser of every number, duration, size, boolean
 * and HOST:PORT that dsys reads from a command line, an environment
 * variable or a URL.  Pure: no allocation, no output.
 */
#ifndef DSYS_BASE_PARSE_H
#define DSYS_BASE_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Value parsers, one for every number on a command line or in an
 * environment variable: full validation, no atoi.  Each returns 0, or -1
 * when the text is not valid or out of range (the caller reports it with
 * the option's name: cli_bad_value in lib/cli).
 *
 *   parse_u64("42")            integers, decimal, no sign, no trailing junk
 *   parse_i64("-7")
 *   parse_duration_us("500ms") 250us 500ms 2s 1.5s 1m 1h, or a bare number of seconds
 *   parse_size("10k")          bytes: 512 10k 1M 2G (1024-based), or a bare number
 *   parse_bool("yes")          1/0 true/false yes/no on/off
 *   parse_hostport("127.0.0.1:0", host, sizeof host, &port)
 *                                  HOST:PORT, [v6]:PORT, :PORT (host "0.0.0.0")
 */
int parse_u64(const char *s, uint64_t *out);
int parse_i64(const char *s, int64_t *out);
int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);
int parse_duration_us(const char *s, uint64_t *out);
int parse_duration_ms(const char *s, uint64_t *out);
int parse_size(const char *s, uint64_t *out);
int parse_bool(const char *s, bool *out);
int parse_hostport(const char *s, char *host, size_t host_size, uint16_t *port);

#endif
