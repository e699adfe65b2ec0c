/* readahead.c - see readahead.h */
#include "readahead.h"

void ra_init(struct readahead *ra, size_t first, size_t max)
{
    ra->next = 0;
    ra->first = first;
    ra->max = max < first ? first : max;
    ra->window = first;
}

void ra_advance(struct readahead *ra, off_t off, size_t done, int seq)
{
    if (seq && done)
        ra->window = ra->window * 2 > ra->max ? ra->max : ra->window * 2;
    else if (!seq)
        ra->window = ra->first;
    ra->next = off + (off_t)done;
}
