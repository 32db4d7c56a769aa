/*
 * proto.h -- --proto-message's JSON form, for the messages dsys knows.
 */
#ifndef DSYS_BENCH_PROTO_H
#define DSYS_BENCH_PROTO_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "base/buf.h"

/* The request message of a known SERVICE/METHOD, or NULL. */
const ProtobufCMessageDescriptor *proto_input_of(const char *method);

/* Encode the JSON object text[0..len) as message d, appended to out.
 * Returns 0, or -EINVAL with a reason in err (or -ENOMEM). */
int proto_from_json(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                    struct buf *out, char *err, size_t errlen);

#endif
