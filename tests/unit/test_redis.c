/*
 * Unit tests of lib/store/redis_slot.c and the parts of lib/store/redis.c that need no
 * server: CRC16-XMODEM known vectors, hash tags, slots, and the client's
 * argument checks.  tests/unit/test_redis_live.c talks to real servers.
 */
#include <errno.h>
#include <string.h>

#include "store/redis.h"
#include "tap.h"

/* The bitwise definition, to check the table against. */
static uint16_t crc16_bitwise(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint16_t crc = 0;
	for (size_t i = 0; i < len; i++) {
		crc ^= (uint16_t)(p[i] << 8);
		for (int b = 0; b < 8; b++)
			crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
	}
	return crc;
}

static unsigned slot(const char *k)
{
	return redis_key_slot(k, strlen(k));
}

static void never_cb(void *ud, const struct redisReply *r, int err)
{
	(*(int *)ud)++;
}

int main(void)
{
	is_int(redis_crc16("123456789", 9), 0x31C3, "CRC16(\"123456789\") is 0x31C3 (XMODEM)");
	is_int(redis_crc16("", 0), 0, "CRC16 of nothing is 0");
	is_int(redis_crc16("A", 1), 0x58E5, "CRC16(\"A\") is 0x58E5");

	int table_ok = 1;
	unsigned char all[256];
	for (int i = 0; i < 256; i++) {
		unsigned char b = (unsigned char)i;
		all[i] = b;
		if (redis_crc16(&b, 1) != crc16_bitwise(&b, 1))
			table_ok = 0;
	}
	ok(table_ok, "the table agrees with the bitwise CRC for every byte value");
	is_int(redis_crc16(all, sizeof all), crc16_bitwise(all, sizeof all),
	       "and for a 256-byte run of them");

	/* Slots as redis-cli CLUSTER KEYSLOT reports them. */
	is_int(slot("foo"), 12182, "slot of foo is 12182");
	is_int(slot("bar"), 5061, "slot of bar is 5061");
	is_int(slot("123456789"), 0x31C3 & 16383, "slot is CRC16 mod 16384");
	is_int(slot("user1000"), 3443, "slot of user1000 is 3443");
	is_int(slot("{user1000}.following"), slot("user1000"),
	       "{user1000}.following hashes like user1000");
	is_int(slot("{user1000}.followers"), slot("{user1000}.following"),
	       "keys with one tag share a slot");
	is_int(slot("foo{}{bar}"), redis_crc16("foo{}{bar}", 10) & 16383,
	       "an empty first tag {} hashes the whole key");
	is_int(slot("foo{{bar}}zap"), slot("{bar"), "the tag runs from the first { to the first } after it");
	is_int(slot("foo{bar}{zap}"), slot("bar"), "only the first tag counts");
	is_int(slot("{user1000"), redis_crc16("{user1000", 9) & 16383, "a { without } hashes the whole key");
	is_int(slot("}user{"), redis_crc16("}user{", 6) & 16383, "a } before the { is no tag");
	is_int(redis_key_slot("", 0), 0, "the empty key is slot 0");
	is_int(redis_key_slot("a\0b", 3), redis_crc16("a\0b", 3) & 16383, "keys are binary-safe");

	unsigned max = 0;
	for (int i = 0; i < 1000; i++) {
		char k[32];
		int n = snprintf(k, sizeof k, "key:%d", i);
		unsigned s = redis_key_slot(k, (size_t)n);
		if (s > max)
			max = s;
	}
	ok(max < REDIS_CLUSTER_SLOTS, "slots stay below 16384");

	/* The client refuses what it cannot serve, without a loop turn. */
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct store_url u;
	char err[128];
	struct redis_client *c = (struct redis_client *)1;
	store_url_parse("mem:", &u, err, sizeof err);
	is_int(redis_client_new(&loop, &u, NULL, &c), -EINVAL, "a mem: URL is refused with -EINVAL");
	ok(c == NULL, "and *out is NULL");
	store_url_parse("redis://127.0.0.1:1", &u, err, sizeof err);
	struct redis_options o;
	redis_options_init(&o);
	is_int(o.max_pending, REDIS_DEFAULT_MAX_PENDING, "options start at the defaults");
	o.max_pending = 0;
	is_int(redis_client_new(&loop, &u, &o, &c), -EINVAL, "max_pending 0 is refused");

	/* Port 1 on loopback: nothing listens.  Every command still gets its
	 * one callback, from the loop. */
	redis_options_init(&o);
	o.reconnect_min_ms = 10;
	o.reconnect_max_ms = 20;
	is_int(redis_client_new(&loop, &u, &o, &c), 0, "a client for a closed port is made");
	int calls = 0;
	const char *argv[] = { "PING" };
	size_t len[] = { 4 };
	is_int(redis_command_argv(c, NULL, 0, 1, argv, len, never_cb, &calls), 0, "a command is accepted");
	is_int(calls, 0, "its callback does not run inside redis_command_argv");
	is_int(redis_command_argv(c, NULL, 0, 0, argv, len, never_cb, &calls), -EINVAL,
	       "argc 0 is refused at once");
	for (int i = 0; i < 50 && calls == 0; i++)
		uv_run(&loop, UV_RUN_ONCE);
	is_int(calls, 1, "the command fails through its callback");
	ok(redis_client_last_error(c)[0] != '\0', "the client says why: %s", redis_client_last_error(c));
	redis_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	is_int(uv_loop_close(&loop), 0, "after free and one run the loop has no handles left");
	return tap_done();
}
