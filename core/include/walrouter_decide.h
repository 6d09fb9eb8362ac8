/* walrouter_decide.h — kept for 0.1 users: the decision core is now part of
 * the engine (walrouter_engine.h). */
#ifndef WALROUTER_DECIDE_H
#define WALROUTER_DECIDE_H
#include "walrouter_engine.h"
#endif
