/*
 * proto.c -- --proto-message: a gRPC request body given as JSON, encoded
 * as protobuf through the descriptors protoc-c generated for the messages
 * dsys itself knows (grpc.health.v1 and the tutorial's UserService).
 *
 * The conversion is generic over a descriptor (field by proto name, value
 * by field type), so a message added to the table needs one line.  Only
 * flat messages: scalars, strings, bytes (the JSON string's bytes) and
 * enums by name or number; a nested or repeated field is refused with a
 * hint to give the binary form (@FILE), which is sent as it is.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <protobuf-c/protobuf-c.h>

#include "proto.h"
#include "http/grpc_health.pb-c.h"
#include "http/user_service.pb-c.h"

static const struct {
	const char *method;                       /* SERVICE/METHOD */
	const ProtobufCMessageDescriptor *input;
} known[] = {
	{ "grpc.health.v1.Health/Check", &grpc__health__v1__health_check_request__descriptor },
	{ "grpc.health.v1.Health/Watch", &grpc__health__v1__health_check_request__descriptor },
	{ "UserService/GetUser", &user_request__descriptor },
	{ "UserService/ListUsers", &user_list_request__descriptor },
};

const ProtobufCMessageDescriptor *proto_input_of(const char *method)
{
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		if (strcmp(known[i].method, method) == 0)
			return known[i].input;
	return NULL;
}

/* A JSON number as an integer in [lo, hi]. */
static int json_int(const cJSON *v, double lo, double hi, double *out)
{
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < lo || v->valuedouble > hi)
		return -1;
	*out = v->valuedouble;
	return 0;
}

static int set_field(void *msg, const ProtobufCFieldDescriptor *f, const cJSON *v,
                     char *err, size_t errlen)
{
	char *p = (char *)msg + f->offset;
	double d = 0;
	int bad = 0;
	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		bad = json_int(v, -2147483648.0, 2147483647.0, &d);
		*(int32_t *)p = (int32_t)d;
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		bad = json_int(v, 0, 4294967295.0, &d);
		*(uint32_t *)p = (uint32_t)d;
		break;
	/* 64-bit integers: exact up to 2^53, as JSON numbers go */
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		bad = json_int(v, -9007199254740992.0, 9007199254740992.0, &d);
		*(int64_t *)p = (int64_t)d;
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		bad = json_int(v, 0, 9007199254740992.0, &d);
		*(uint64_t *)p = (uint64_t)d;
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		bad = !cJSON_IsNumber(v);
		*(float *)p = (float)v->valuedouble;
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		bad = !cJSON_IsNumber(v);
		*(double *)p = v->valuedouble;
		break;
	case PROTOBUF_C_TYPE_BOOL:
		bad = !cJSON_IsBool(v);
		*(protobuf_c_boolean *)p = cJSON_IsTrue(v);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumDescriptor *e = f->descriptor;
		if (cJSON_IsString(v)) {
			const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(e, v->valuestring);
			bad = ev == NULL;
			if (ev)
				*(int *)p = ev->value;
		} else {
			bad = json_int(v, -2147483648.0, 2147483647.0, &d);
			*(int *)p = (int)d;
		}
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		bad = !cJSON_IsString(v);
		if (!bad)
			*(const char **)p = v->valuestring;  /* the tree outlives the packing */
		break;
	case PROTOBUF_C_TYPE_BYTES:
		bad = !cJSON_IsString(v);
		if (!bad) {
			ProtobufCBinaryData *b = (ProtobufCBinaryData *)p;
			b->data = (uint8_t *)v->valuestring;
			b->len = strlen(v->valuestring);
		}
		break;
	default:
		snprintf(err, errlen, "field '%s' is a nested message: give the binary form as @FILE",
		         f->name);
		return -EINVAL;
	}
	if (bad) {
		snprintf(err, errlen, "field '%s': the value does not fit its type", f->name);
		return -EINVAL;
	}
	if (f->quantifier_offset && f->label == PROTOBUF_C_LABEL_OPTIONAL)
		*(protobuf_c_boolean *)((char *)msg + f->quantifier_offset) = 1;
	return 0;
}

int proto_from_json(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                    struct buf *out, char *err, size_t errlen)
{
	cJSON *root = cJSON_ParseWithLength(text, len);
	if (!root || !cJSON_IsObject(root)) {
		snprintf(err, errlen, "not a JSON object");
		cJSON_Delete(root);
		return -EINVAL;
	}
	void *msg = calloc(1, d->sizeof_message);
	if (!msg) {
		cJSON_Delete(root);
		return -ENOMEM;
	}
	d->message_init((ProtobufCMessage *)msg);
	int r = 0;
	const cJSON *m;
	cJSON_ArrayForEach(m, root) {
		const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, m->string);
		if (!f) {
			snprintf(err, errlen, "%s has no field '%s'", d->name, m->string);
			r = -EINVAL;
			break;
		}
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			snprintf(err, errlen, "field '%s' is repeated: give the binary form as @FILE", f->name);
			r = -EINVAL;
			break;
		}
		if ((r = set_field(msg, f, m, err, errlen)) < 0)
			break;
	}
	if (r == 0) {
		size_t n = protobuf_c_message_get_packed_size((const ProtobufCMessage *)msg);
		buf_reserve(out, n + 1);
		protobuf_c_message_pack((const ProtobufCMessage *)msg, (uint8_t *)out->data + out->len);
		out->len += n;
	}
	/* strings point into the tree: free the message's own block only */
	free(msg);
	cJSON_Delete(root);
	return r;
}
