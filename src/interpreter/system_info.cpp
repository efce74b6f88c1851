#include "interpreter/system_info.h"
// work in progress (providers helper)
