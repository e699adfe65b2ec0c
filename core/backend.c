/* backend.c - scheme registry: maps "scheme://" to the backend that serves it. */
#include "backend.h"
#include "block/block.h"
#include "local/local.h"
#include "s3/s3.h"

#include <string.h>

static const struct backend_ops *const built[] = {&bk_file_ops, &bk_s3_ops, &bk_direct_ops, &bk_block_ops};
/* Schemes of DESIGN.md that later work adds; named so that users get "not built yet"
 * instead of "unknown scheme". */
static const char *const planned[] = {""}; /* none at the moment */

const struct backend_ops *bk_lookup(const char *uri, const char **rest, int *known_but_unbuilt)
{
    const char *sep = strstr(uri, "://");
    *known_but_unbuilt = 0;
    if (!sep) return NULL;
    size_t n = (size_t)(sep - uri);
    *rest = sep + 3;
    for (size_t i = 0; i < sizeof built / sizeof *built; i++)
        if (strlen(built[i]->scheme) == n && memcmp(built[i]->scheme, uri, n) == 0) return built[i];
    for (size_t i = 0; i < sizeof planned / sizeof *planned; i++)
        if (planned[i][0] && strlen(planned[i]) == n && memcmp(planned[i], uri, n) == 0) *known_but_unbuilt = 1;
    return NULL;
}
