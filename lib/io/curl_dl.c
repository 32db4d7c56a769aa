/*
 * io/curl_dl.c -- find libcurl at run time and fill the table of the
 * functions dsys calls (see curl_dl.h for why it is not linked).
 *
 * The table is filled by name, in the order of struct curl_dl, from one
 * list; an INVARIANT checks that the list and the struct have the same
 * number of slots, so adding a function to one and not the other stops the
 * first program that loads libcurl.  RTLD_LOCAL keeps libcurl's symbols
 * (and those of its dependencies) out of the global namespace: nothing
 * else in the process binds to them by accident.  The handle is never
 * closed: libcurl's global state lives until the process exits.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/invariant.h"
#include "io/curl_dl.h"

struct curl_dl curl_dl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const char *load_why;   /* NULL once loaded */
static char why_buf[512];

/* In the order of struct curl_dl's members. */
static const char *const names[] = {
	"curl_global_init", "curl_easy_init", "curl_easy_setopt", "curl_easy_getinfo",
	"curl_easy_perform", "curl_easy_strerror", "curl_easy_cleanup", "curl_multi_init",
	"curl_multi_setopt", "curl_multi_add_handle", "curl_multi_remove_handle",
	"curl_multi_assign", "curl_multi_socket_action", "curl_multi_info_read",
	"curl_multi_cleanup", "curl_slist_append", "curl_slist_free_all",
};

static void load(void)
{
	INVARIANT(sizeof curl_dl == sizeof names / sizeof names[0] * sizeof(void *));
	const char *want = getenv("DSYS_LIBCURL");
	const char *tried = want && *want ? want : "libcurl.so.4";
	void *lib = dlopen(tried, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		/* dlerror's text names the file and the reason; keep the first
		 * one, the library most machines have */
		const char *e = dlerror();
		snprintf(why_buf, sizeof why_buf,
		         "cannot load libcurl (%s); install libcurl4 or set DSYS_LIBCURL to its path",
		         e ? e : tried);
		if (!(want && *want) && (lib = dlopen("libcurl-gnutls.so.4", RTLD_NOW | RTLD_LOCAL)))
			tried = "libcurl-gnutls.so.4";
	}
	if (!lib) {
		load_why = why_buf;
		return;
	}
	struct curl_dl t;
	void **slot = (void **)&t;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		slot[i] = dlsym(lib, names[i]);
		if (!slot[i]) {
			snprintf(why_buf, sizeof why_buf, "cannot use libcurl '%s': it has no %s (not libcurl, or too old)",
			         tried, names[i]);
			load_why = why_buf;
			return;
		}
	}
	if (t.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(why_buf, sizeof why_buf, "cannot start libcurl: curl_global_init failed");
		load_why = why_buf;
		return;
	}
	curl_dl = t;
	load_why = NULL;
}

const struct curl_dl *curl_dl_load(const char **why)
{
	pthread_once(&load_once, load);
	if (load_why) {
		if (why)
			*why = load_why;
		return NULL;
	}
	return &curl_dl;
}
