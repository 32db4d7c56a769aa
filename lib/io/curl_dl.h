/*
 * io/curl_dl.h -- libcurl, loaded with dlopen(3) on first use instead of
 * linked.
 *
 * Why.  libcurl pulls in some thirty shared libraries (OpenSSL, GnuTLS,
 * Kerberos, LDAP, SSH, IDN, PSL...).  Linked, every dsys program pays for
 * loading and relocating them and running their constructors at each
 * start: about 20 ms of CPU, most of the start of a short command such as
 * `dsys-register render --once` or `dsys-lock run`, which most of the time
 * never speak HTTP through libcurl.  Loaded here, only the runs that do
 * (an http:// check, an OTLP export, a counter client; the etcd client
 * speaks HTTP/1.1 itself)
 * pay, and only once.
 *
 * How to use it.  Include this header instead of <curl/curl.h>: it
 * includes curl.h for the types and constants, and then turns each libcurl
 * function we use into a call through the table `curl_dl` (curl_easy_init
 * becomes (*curl_dl.easy_init), and so on), so the code still reads as
 * libcurl code.  Before the first such call, call curl_dl_load(); a call
 * through the table before a successful load is a NULL call.  A file that
 * needs a libcurl function missing from the table adds it here and in
 * curl_dl.c's name list (the INVARIANT there keeps the two in step).
 *
 * Which library.  $DSYS_LIBCURL when set (a file name or path given to
 * dlopen as it is: for a libcurl installed elsewhere, and for the tests of
 * a missing libcurl), else libcurl.so.4 (Debian's libcurl4, the OpenSSL
 * build), else libcurl-gnutls.so.4 (libcurl3-gnutls).  The build needs
 * only curl's headers (libcurl4-openssl-dev, whose dependency installs
 * libcurl4 too).
 *
 * Threads.  curl_dl_load is safe from any thread (pthread_once); it also
 * runs curl_global_init once, so users do not.  The table is written once
 * and only read afterwards.
 */
#ifndef DSYS_CURL_DL_H
#define DSYS_CURL_DL_H

#include <curl/curl.h>

struct curl_dl {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *h, CURLoption opt, ...);
	CURLcode (*easy_getinfo)(CURL *h, CURLINFO info, ...);
	CURLcode (*easy_perform)(CURL *h);
	const char *(*easy_strerror)(CURLcode rc);
	void (*easy_cleanup)(CURL *h);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
	CURLMcode (*multi_add_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_remove_handle)(CURLM *m, CURL *h);
	CURLMcode (*multi_assign)(CURLM *m, curl_socket_t fd, void *p);
	CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t fd, int ev, int *running);
	CURLMsg *(*multi_info_read)(CURLM *m, int *left);
	CURLMcode (*multi_cleanup)(CURLM *m);
	struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
	void (*slist_free_all)(struct curl_slist *l);
};

/* Filled by the first successful curl_dl_load(). */
extern struct curl_dl curl_dl;

/* Load libcurl and run curl_global_init, once per process.  Returns the
 * table, or NULL with *why (when why is not NULL) set to a static
 * sentence naming the library and what is wrong, such as "cannot load
 * libcurl (libcurl.so.4: cannot open shared object file: No such file or
 * directory); install libcurl4 or set DSYS_LIBCURL".  A failure is final:
 * later calls give the same answer. */
const struct curl_dl *curl_dl_load(const char **why);

/* curl.h defines some of these as type-checking macros (gcc): the calls
 * go through the table instead. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init (*curl_dl.global_init)
#define curl_easy_init (*curl_dl.easy_init)
#define curl_easy_setopt (*curl_dl.easy_setopt)
#define curl_easy_getinfo (*curl_dl.easy_getinfo)
#define curl_easy_perform (*curl_dl.easy_perform)
#define curl_easy_strerror (*curl_dl.easy_strerror)
#define curl_easy_cleanup (*curl_dl.easy_cleanup)
#define curl_multi_init (*curl_dl.multi_init)
#define curl_multi_setopt (*curl_dl.multi_setopt)
#define curl_multi_add_handle (*curl_dl.multi_add_handle)
#define curl_multi_remove_handle (*curl_dl.multi_remove_handle)
#define curl_multi_assign (*curl_dl.multi_assign)
#define curl_multi_socket_action (*curl_dl.multi_socket_action)
#define curl_multi_info_read (*curl_dl.multi_info_read)
#define curl_multi_cleanup (*curl_dl.multi_cleanup)
#define curl_slist_append (*curl_dl.slist_append)
#define curl_slist_free_all (*curl_dl.slist_free_all)

#endif
