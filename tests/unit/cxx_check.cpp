// The header must compile as C++ too, implementation included (WebP and GIF too).
#define SPIM_WEBP
#define SPIM_GIF
#define SPARTA_IMAGER_IMPLEMENTATION
#include "sparta_imager.h"
