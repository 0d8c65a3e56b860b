/* The whole library, implementation included, as one translation unit for
   the linters (tests/it/it_lint.sh). */
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
