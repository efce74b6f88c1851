#include "interpreter/history.h"
// work in progress (history helper)
