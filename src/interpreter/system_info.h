// system_info: work in progress (providers helper)
#pragma once
