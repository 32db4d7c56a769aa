/* test_buf.c -- lib/base/buf: appends, numbers, and reading whole files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "tap.h"

int main(void)
{
	struct buf b = BUF_INIT;
	buf_puts(&b, "a");
	buf_put_i64(&b, INT64_MIN);
	buf_printf(&b, "%s", "z");
	is_str(b.data, "a-9223372036854775808z", "appends, an int64 and printf land in order");
	is_int((long long)b.len, 22, "len counts what was appended");

	char dir[] = "/tmp/test_buf.XXXXXX";
	ok(mkdtemp(dir) != NULL, "a scratch directory");
	char path[64];
	snprintf(path, sizeof path, "%s/f", dir);
	FILE *f = fopen(path, "w");
	for (int i = 0; i < 100000; i++)
		fputs("0123456789", f);
	fclose(f);

	buf_reset(&b);
	buf_puts(&b, "head:");
	ok(buf_read_file(&b, path, 1000000) == 0, "a file of exactly the limit is read");
	is_int((long long)b.len, 5 + 1000000, "and appended after what was there");
	ok(memcmp(b.data + 5, "0123456789", 10) == 0 && b.data[b.len] == '\0', "whole and NUL-terminated");

	buf_reset(&b);
	buf_puts(&b, "keep");
	is_int(buf_read_file(&b, path, 999999), -EFBIG, "one byte over the limit is -EFBIG");
	is_str(b.data, "keep", "and leaves the buffer as it was");
	is_int(buf_read_file(&b, "/nonexistent/x", 10), -ENOENT, "a missing file is -ENOENT");
	is_int(buf_read_file(&b, dir, 10), -EISDIR, "a directory is -EISDIR");
	is_str(b.data, "keep", "failures append nothing");

	unlink(path);
	rmdir(dir);
	buf_free(&b);
	ok(b.data == NULL && b.len == 0, "buf_free leaves an empty buffer to reuse");
	return tap_done();
}
