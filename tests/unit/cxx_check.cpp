// The header must compile as C++ too, implementation included.
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
