/*
 * base/bytes.h -- fixed-width little-endian integers in byte arrays.
 *
 * The on-disk and in-message encodings of lib/ (Raft snapshots, the
 * simulator's state machine, later the WAL) are little-endian whatever
 * the host, written byte by byte so alignment never matters.  Compilers
 * turn these loops into one load or store on x86-64.
 */
#ifndef DSYS_BYTES_H
#define DSYS_BYTES_H

#include <stdint.h>

static inline void le64_put(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t le64_get(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void le32_put(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t le32_get(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

#endif
