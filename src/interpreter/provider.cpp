#include "interpreter/provider.h"
// work in progress (providers helper)
