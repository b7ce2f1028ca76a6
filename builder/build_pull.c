/* build_pull.c - the images a build starts from, after its --pull policy:
 * the store's, fetched first through the caller's resolver when it lacks
 * them (missing) or always (always). */
#include "build_int.h"
#include "cstore/lease.h"

int
build_lease_image(build *b, const char *name, cs_image **out, cs_error **err)
{
    const cs_build_opts *o = b->o;
    int r;
    if (o->resolve && o->pull_always && (r = o->resolve(o->resolve_ctx, name, err)) < 0)
        return r;
    r = cs_lease_image(b->s, name, out, err);
    if (r != -CS_ENOTFOUND || !o->resolve || o->pull_always)
        return r;
    cs_error_clear(err);
    r = o->resolve(o->resolve_ctx, name, err);
    if (r < 0)
        return r;
    return cs_lease_image(b->s, name, out, err);
}
