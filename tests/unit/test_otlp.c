/*
 * test_otlp.c -- obs/otlp: where and how long, from OpenTelemetry's
 * exporter variables.  (Sending is tests/trace.bats', against a real
 * HTTP receiver.)
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "obs/otlp.h"
#include "tap.h"

static void clear(void)
{
	static const char *vars[] = {"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
	                             "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	                             "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
	                             "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"};
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
}

int main(void)
{
	struct otlp_config c;
	char err[512];
	clear();
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), -ENOENT, "no endpoint: nothing to send");
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "", 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), -ENOENT, "an empty endpoint is unset");

	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h:4318", 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), 0, "a base endpoint");
	is_str(c.url, "http://h:4318/v1/traces", "v1/traces appended after a '/'");
	is_int(c.timeout_ms, OTLP_DEFAULT_TIMEOUT_MS, "default timeout 10 s");
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "https://h/base/", 1);
	otlp_config_from_env(&c, "traces", err, sizeof err);
	is_str(c.url, "https://h/base/v1/traces", "no second '/' after a base that ends with one");
	otlp_config_from_env(&c, "logs", err, sizeof err);
	is_str(c.url, "https://h/base/v1/logs", "the signal names the path");

	setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x", 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), 0, "a signal endpoint");
	is_str(c.url, "http://t:1/x", "used as is, and it wins");
	unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");

	setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500", 1);
	otlp_config_from_env(&c, "traces", err, sizeof err);
	is_int(c.timeout_ms, 2500, "OTEL_EXPORTER_OTLP_TIMEOUT in milliseconds");
	setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "700", 1);
	otlp_config_from_env(&c, "traces", err, sizeof err);
	is_int(c.timeout_ms, 700, "the _TRACES_ timeout wins");
	setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "0", 1);
	otlp_config_from_env(&c, "traces", err, sizeof err);
	is_int(c.timeout_ms, OTLP_DEFAULT_TIMEOUT_MS, "0 keeps the default");
	static const char *bad_timeouts[] = {"10s", "-1", "1.5", "3600001", "x"};
	for (size_t i = 0; i < sizeof bad_timeouts / sizeof bad_timeouts[0]; i++) {
		setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", bad_timeouts[i], 1);
		err[0] = '\0';
		is_int(otlp_config_from_env(&c, "traces", err, sizeof err), -EINVAL, "timeout '%s' is refused",
		       bad_timeouts[i]);
		ok(strstr(err, bad_timeouts[i]) != NULL, "and named in the error");
	}
	unsetenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT");
	unsetenv("OTEL_EXPORTER_OTLP_TIMEOUT");

	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), 0, "no protocol set");
	ok(c.encoding == OTLP_PROTOBUF, "http/protobuf is the default, as the spec says");
	setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), 0, "http/json is spoken");
	ok(c.encoding == OTLP_JSON, "as JSON");
	setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf", 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), 0, "http/protobuf is spoken");
	ok(c.encoding == OTLP_PROTOBUF, "and the _TRACES_ form wins");
	unsetenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
	setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), 1, "grpc: a warning");
	ok(strstr(err, "grpc") != NULL, "naming the protocol");
	ok(c.encoding == OTLP_PROTOBUF, "sending http/protobuf instead");
	is_str(c.url, "https://h/base/v1/traces", "and the export goes on");
	unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");

	setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=secret%20one, X-Team = db", 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), 0, "headers");
	is_str(c.headers, "api-key: secret one\nX-Team: db\n", "headers decoded, one line each");
	setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "a=1", 1);
	otlp_config_from_env(&c, "traces", err, sizeof err);
	is_str(c.headers, "a: 1\n", "the _TRACES_ headers win");
	static const char *bad_headers[] = {"k", "k=v v", "k=%0d%0aX: y", "bad key=v", "k=%zz"};
	for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++) {
		setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", bad_headers[i], 1);
		is_int(otlp_config_from_env(&c, "traces", err, sizeof err), -EINVAL, "headers '%s' are refused",
		       bad_headers[i]);
		is_str(c.headers, "", "and none are kept");
	}
	unsetenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
	unsetenv("OTEL_EXPORTER_OTLP_HEADERS");

	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://h", 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), -EINVAL, "a non-HTTP endpoint is refused");
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "h:4318", 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), -EINVAL, "an endpoint with no scheme is refused");
	char *longurl = malloc(OTLP_URL_MAX + 10);
	memcpy(longurl, "http://", 7);
	memset(longurl + 7, 'a', OTLP_URL_MAX);
	longurl[OTLP_URL_MAX + 7] = '\0';
	setenv("OTEL_EXPORTER_OTLP_ENDPOINT", longurl, 1);
	is_int(otlp_config_from_env(&c, "traces", err, sizeof err), -EINVAL, "an endpoint too long is refused");
	free(longurl);
	clear();
	return tap_done();
}
