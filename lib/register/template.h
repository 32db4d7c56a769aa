/*
 * register/template.h -- the small template language of dsys-register
 * render: text with actions in {{ }}, and nothing that runs code.
 *
 *   {{range}} ... {{end}}       the body once per instance (sorted by id)
 *   {{if FIELD}} ... {{else}} ... {{end}}   FIELD non-empty?
 *   {{FIELD}}                   a field's value
 *   {{FIELD or "TEXT"}}         ... or TEXT when it is empty
 *
 * Fields inside range: id addr host port url status since service
 * meta.KEY; outside: service and count (instances in the set).  A field
 * that does not exist is an error at parse time, never an empty string.
 * Errors name the line and column: "2:13: unknown field 'adr'".
 */
#ifndef DSYS_REGISTER_TEMPLATE_H
#define DSYS_REGISTER_TEMPLATE_H

#include <stddef.h>

#include "base/buf.h"
#include "register/register.h"

struct reg_template;

/* Parse text[0..len).  Returns the template, or NULL with err filled
 * ("LINE:COL: what"). */
struct reg_template *reg_template_parse(const char *text, size_t len, char *err, size_t err_size);
void reg_template_free(struct reg_template *t);   /* NULL is a no-op */

/* Render for service and its instances (in the order given). */
void reg_template_render(const struct reg_template *t, const char *service,
                         const struct reg_instance *v, size_t n, struct buf *out);

#endif
