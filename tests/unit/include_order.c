/* The implementation after other system headers. Built twice by
   mk/sections.mk: with -std=gnu99 (or _POSIX_C_SOURCE given) it must build;
   under a strict -std=c99 it must stop at the header's #error that says how
   to fix the include order, not with an obscure error further down. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdint.h>

#define SPARTA_IMAGER_IMPLEMENTATION
#define SPIM_NO_IMAGE
#define SPIM_NO_EVENTS
#define SPIM_NO_S3
#define SPIM_NO_LAMBDA
#include "sparta_imager.h"

int main(void)
{
    char hex[SPIM_SHA256_HEX_SIZE];
    spim__sha256_hex("", 0, hex);
    printf("%s\n", hex);
    return strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") != 0;
}
