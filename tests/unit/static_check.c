/* The header with SPARTA_IMAGER_STATIC: every function static, none called,
   and still no warning under -Werror. */
#define SPARTA_IMAGER_STATIC
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"

int main(void)
{
    return spim_status_str(SPIM_OK)[0] == 'o' ? 0 : 1;
}
