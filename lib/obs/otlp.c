/*
 * obs/otlp.c -- OTLP/HTTP export of request bodies.
 *
 * One blocking libcurl easy handle per export.  The whole export, every
 * attempt and every wait between them, fits inside one deadline taken
 * from the timeout variable, because a tracer must never hold the
 * program it traces longer than it was told to: otel-cli's fixed 1 s per
 * attempt both cut long exports and stacked up delays.  Waits follow the
 * server's Retry-After when it gives one, else exponential backoff with
 * jitter, so many exporters that failed together do not come back
 * together.
 *
 * libcurl is loaded with dlopen(3) (io/curl_dl) on the first export, not
 * linked: its thirty-odd shared libraries (TLS, GSSAPI, LDAP, ...) cost a
 * program that links them some 20 ms at every start, which `dsys-trace
 * exec` would add to every command it wraps even when it sends nothing.
 */
#include "obs/otlp.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/invariant.h"
#include "base/parse.h"
#include "io/curl_dl.h"
#include "obs/trace.h"

static const char *env2(const char *specific, const char *general)
{
	const char *v = getenv(specific);
	if (v && *v)
		return v;
	v = getenv(general);
	return v && *v ? v : NULL;
}

int otlp_config_from_env(struct otlp_config *c, const char *signal, char *err, size_t errlen)
{
	char name[64], up[16];
	size_t n = strlen(signal);
	INVARIANT(n < sizeof up);
	for (size_t i = 0; i <= n; i++)
		up[i] = (char)(signal[i] >= 'a' && signal[i] <= 'z' ? signal[i] - 32 : signal[i]);
	/* not memset: c is 10 KiB of string room, and a short-lived program
	 * (dsys-trace exec) would fault its pages in for nothing */
	c->url[0] = c->headers[0] = '\0';
	c->encoding = OTLP_PROTOBUF;
	c->timeout_ms = OTLP_DEFAULT_TIMEOUT_MS;

	snprintf(name, sizeof name, "OTEL_EXPORTER_OTLP_%s_ENDPOINT", up);
	const char *v = getenv(name);
	if (v && *v) {
		if (strlen(v) >= sizeof c->url) {
			snprintf(err, errlen, "%s is longer than %d bytes", name, OTLP_URL_MAX - 1);
			return -EINVAL;
		}
		snprintf(c->url, sizeof c->url, "%s", v);
	} else {
		v = getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
		if (!v || !*v)
			return -ENOENT;
		size_t vl = strlen(v);
		const char *sep = v[vl - 1] == '/' ? "" : "/";
		if (vl + 1 + 3 + n + 1 > sizeof c->url) {
			snprintf(err, errlen, "OTEL_EXPORTER_OTLP_ENDPOINT is longer than %d bytes", OTLP_URL_MAX - 16);
			return -EINVAL;
		}
		snprintf(c->url, sizeof c->url, "%s%sv1/%s", v, sep, signal);
	}
	if (strncmp(c->url, "http://", 7) && strncmp(c->url, "https://", 8)) {
		snprintf(err, errlen, "invalid OTLP endpoint '%s': expected an http:// or https:// URL", c->url);
		return -EINVAL;
	}

	snprintf(name, sizeof name, "OTEL_EXPORTER_OTLP_%s_TIMEOUT", up);
	v = env2(name, "OTEL_EXPORTER_OTLP_TIMEOUT");
	if (v) {
		uint64_t ms;
		if (parse_u64(v, &ms) < 0 || ms > 3600000) {
			snprintf(err, errlen, "invalid OTLP timeout '%s': expected milliseconds, 0 to 3600000", v);
			return -EINVAL;
		}
		c->timeout_ms = ms ? (long)ms : OTLP_DEFAULT_TIMEOUT_MS; /* 0: no limit asked; keep ours */
	}

	snprintf(name, sizeof name, "OTEL_EXPORTER_OTLP_%s_HEADERS", up);
	v = env2(name, "OTEL_EXPORTER_OTLP_HEADERS");
	if (v) {
		struct trace_attrs *l = calloc(1, sizeof *l);
		INVARIANT(l != NULL);
		int bad = trace_kv_list_parse(v, l) < 0;
		size_t len = 0;
		for (int i = 0; i < l->n && !bad; i++) {
			for (const char *p = l->a[i].v.s; *p; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					bad = 1;
			int w = snprintf(c->headers + len, sizeof c->headers - len, "%s: %s\n",
			                 l->a[i].key, l->a[i].v.s);
			if (w < 0 || (size_t)w >= sizeof c->headers - len)
				bad = 1;
			else
				len += (size_t)w;
		}
		trace_attrs_free(l);
		free(l);
		if (bad) {
			c->headers[0] = '\0';
			snprintf(err, errlen, "invalid OTLP headers: expected key=value pairs separated by commas, "
			         "values percent-encoded");
			return -EINVAL;
		}
	}

	snprintf(name, sizeof name, "OTEL_EXPORTER_OTLP_%s_PROTOCOL", up);
	v = env2(name, "OTEL_EXPORTER_OTLP_PROTOCOL");
	c->encoding = OTLP_PROTOBUF;
	if (v && !strcmp(v, "http/json")) {
		c->encoding = OTLP_JSON;
	} else if (v && strcmp(v, "http/protobuf")) {
		snprintf(err, errlen, "OTLP protocol '%s' is not supported; sending http/protobuf", v);
		return 1;
	}
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static size_t discard_cb(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	(void)ud;
	return size * n;
}

static bool retryable_status(long code)
{
	return code == 429 || code == 502 || code == 503 || code == 504;
}

static bool retryable_curl(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
	       rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING;
}

int otlp_post(const struct otlp_config *c, const char *body, size_t len, char *err, size_t errlen)
{
	const char *why;
	if (!curl_dl_load(&why)) {
		snprintf(err, errlen, "%s", why);
		return -EIO;
	}
	CURL *h = curl_dl.easy_init();
	if (!h) {
		snprintf(err, errlen, "cannot start libcurl");
		return -EIO;
	}
	struct curl_slist *hdr = curl_dl.slist_append(NULL, c->encoding == OTLP_JSON
	                                                       ? "Content-Type: application/json"
	                                                       : "Content-Type: application/x-protobuf");
	for (const char *p = c->headers; *p;) {
		const char *nl = strchr(p, '\n');
		INVARIANT(nl != NULL);
		char line[OTLP_HEADERS_MAX];
		memcpy(line, p, (size_t)(nl - p));
		line[nl - p] = '\0';
		hdr = curl_dl.slist_append(hdr, line);
		p = nl + 1;
	}
	curl_dl.easy_setopt(h, CURLOPT_URL, c->url);
	curl_dl.easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_dl.easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_dl.easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_dl.easy_setopt(h, CURLOPT_WRITEFUNCTION, discard_cb);
	curl_dl.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_dl.easy_setopt(h, CURLOPT_USERAGENT, "dsys/" DSYS_VERSION);

	int64_t deadline = now_ms() + c->timeout_ms;
	int64_t backoff = 100;
	int rc = -EIO;
	for (int attempt = 1;; attempt++) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			rc = -ETIMEDOUT;
			snprintf(err, errlen, "OTLP export to %s timed out after %ld ms", c->url, c->timeout_ms);
			break;
		}
		curl_dl.easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
		CURLcode cr = curl_dl.easy_perform(h);
		long code = 0;
		bool retry;
		if (cr == CURLE_OK) {
			curl_dl.easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
			if (code >= 200 && code < 300) {
				rc = 0;
				break;
			}
			snprintf(err, errlen, "OTLP export to %s: HTTP status %ld", c->url, code);
			retry = retryable_status(code);
		} else {
			snprintf(err, errlen, "OTLP export to %s: %s", c->url, curl_dl.easy_strerror(cr));
			if (cr == CURLE_OPERATION_TIMEDOUT) {
				rc = -ETIMEDOUT;
				break;
			}
			retry = retryable_curl(cr);
		}
		if (!retry || attempt == OTLP_MAX_ATTEMPTS)
			break;
		/* the server's Retry-After, else backoff with jitter */
		int64_t wait;
		curl_off_t ra = -1;
		if (code && curl_dl.easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0) {
			wait = (int64_t)ra * 1000;
		} else {
			uint16_t r = 0;
			if (getrandom(&r, sizeof r, 0) != sizeof r)
				r = 0xffff;
			wait = backoff / 2 + (backoff / 2) * r / 0xffff;
			backoff *= 2;
		}
		if (now_ms() + wait >= deadline) {
			rc = -ETIMEDOUT;
			size_t l = strlen(err);
			snprintf(err + l, errlen - l, "; no time left to retry in %ld ms", c->timeout_ms);
			break;
		}
		sleep_ms(wait);
	}
	curl_dl.slist_free_all(hdr);
	curl_dl.easy_cleanup(h);
	return rc;
}
