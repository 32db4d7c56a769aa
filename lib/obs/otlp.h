/*
 * obs/otlp.h -- OTLP/HTTP export of request bodies, as OpenTelemetry's
 * exporter specification says.
 *
 *   struct otlp_config cfg;
 *   char err[256];
 *   if (otlp_config_from_env(&cfg, "traces", err, sizeof err) == 0)
 *       if (otlp_post(&cfg, line.data, line.len, err, sizeof err) < 0)
 *           fprintf(stderr, "%s\n", err);
 *
 * Where: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is; otherwise
 * OTEL_EXPORTER_OTLP_ENDPOINT is a base URL to which "v1/traces" is
 * appended (after a '/' when it has none).  With neither set there is
 * nothing to send, and nothing waits.
 *
 * How long: OTEL_EXPORTER_OTLP_TRACES_TIMEOUT, else
 * OTEL_EXPORTER_OTLP_TIMEOUT, in milliseconds (default 10000), bounds the
 * whole export, retries included, so a slow or absent collector delays
 * the caller by at most that much.
 *
 * Retries: a 429, 502, 503 or 504 answer, or a connection that could not
 * be made, is tried again up to OTLP_MAX_ATTEMPTS times in all, after an
 * exponential backoff with jitter (100 ms doubled each time, a random 50%
 * to 100% of it), or after the Retry-After the server asked for.  A wait
 * that would pass the deadline ends the export as failed instead.  Any
 * other status (400 for a body it cannot read) is final.
 *
 * Headers: OTEL_EXPORTER_OTLP_TRACES_HEADERS, else
 * OTEL_EXPORTER_OTLP_HEADERS, key=value pairs as trace_kv_list_parse
 * reads them (an API key for a hosted backend), sent with every request;
 * a value with a control character is refused, lest it split the header.
 *
 * Encoding: OTEL_EXPORTER_OTLP_PROTOCOL (or its _TRACES_/_LOGS_ form),
 * http/protobuf by default as the spec says, or http/json.  grpc, which
 * we do not speak, is reported through err and the export goes on as
 * http/protobuf (to the same URL: a gRPC port will refuse it).
 *
 * Blocking (libcurl's easy interface): meant for command-line programs
 * that export a span as they end.  libcurl is loaded and initialised
 * once per process (io/curl_dl, safe from any thread); a missing libcurl
 * is an error through err.
 */
#ifndef DSYS_OTLP_H
#define DSYS_OTLP_H

#include <stddef.h>

#include "obs/otlp_codec.h"

#define OTLP_URL_MAX 2048
#define OTLP_DEFAULT_TIMEOUT_MS 10000
#define OTLP_MAX_ATTEMPTS 5

#define OTLP_HEADERS_MAX 8192

struct otlp_config {
	char url[OTLP_URL_MAX];
	long timeout_ms;
	char headers[OTLP_HEADERS_MAX];  /* "Key: value" lines, each ending in '\n' */
	enum otlp_encoding encoding;     /* of the bodies to post */
};

/*
 * Read the variables for signal ("traces" or "logs").  Returns 0
 * when an endpoint is set, -ENOENT when none is, -EINVAL for a bad value
 * (err says which).  A warning that does not stop the export (an
 * unsupported protocol) is returned as 1 with err set.
 */
int otlp_config_from_env(struct otlp_config *c, const char *signal, char *err, size_t errlen);

/*
 * POST body (application/x-protobuf or application/json, by c->encoding)
 * to c->url, with the retries above.
 * Returns 0 after a 2xx answer, or -EIO / -ETIMEDOUT with err saying
 * what happened last.
 */
int otlp_post(const struct otlp_config *c, const char *body, size_t len, char *err, size_t errlen);

#endif
