/*
 * test_curl_dl.c -- io/curl_dl: libcurl found at run time, its functions
 * callable through the table, and a missing or wrong library refused
 * with a sentence that names it.  Each load happens once per process, so
 * each case runs in a child of its own.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/curl_dl.h"
#include "tap.h"

/* In a child with DSYS_LIBCURL set to lib (NULL: unset): 0 when the load
 * succeeds, 1 when it fails; its reason into why. */
static int load_in_child(const char *lib, char *why, size_t size)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (lib)
			setenv("DSYS_LIBCURL", lib, 1);
		else
			unsetenv("DSYS_LIBCURL");
		const char *w = "";
		const struct curl_dl *t = curl_dl_load(&w);
		/* a second call gives the same answer without loading again */
		const char *w2 = "";
		const struct curl_dl *t2 = curl_dl_load(&w2);
		if ((t != NULL) != (t2 != NULL) || strcmp(w, w2))
			_exit(3);
		if (t) {
			/* a call through the table reaches libcurl */
			CURL *h = curl_easy_init();
			if (!h || strcmp(curl_easy_strerror(CURLE_OK), "No error"))
				_exit(2);
			curl_easy_cleanup(h);
		}
		if (write(p[1], w, strlen(w)) < 0)
			_exit(4);
		_exit(t ? 0 : 1);
	}
	close(p[1]);
	ssize_t n = read(p[0], why, size - 1);
	why[n > 0 ? n : 0] = '\0';
	close(p[0]);
	int st;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

int main(void)
{
	char why[600];
	is_int(load_in_child(NULL, why, sizeof why), 0, "libcurl loads from its usual name, and a call reaches it");
	is_int(load_in_child("libcurl.so.4", why, sizeof why), 0, "DSYS_LIBCURL naming libcurl.so.4 loads it");

	is_int(load_in_child("/nonexistent/libcurl.so.4", why, sizeof why), 1, "a missing DSYS_LIBCURL is refused");
	ok(strstr(why, "cannot load libcurl") && strstr(why, "/nonexistent/libcurl.so.4") &&
	   strstr(why, "install libcurl4"), "the reason names the library and what to install: %s", why);

	is_int(load_in_child("libc.so.6", why, sizeof why), 1, "a library that is not libcurl is refused");
	ok(strstr(why, "has no curl_global_init (not libcurl") != NULL, "the reason names the missing function: %s", why);
	return tap_done();
}
