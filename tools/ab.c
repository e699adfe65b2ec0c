/* ab.c - `s3shim ab`: placeholder until the statistics land. */
#include "tools.h"

int cmd_ab(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "s3shim ab: not built yet\n");
    return 2;
}
