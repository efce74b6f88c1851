#include "interpreter/executor.h"
// work in progress (history helper)
