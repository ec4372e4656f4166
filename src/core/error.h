// The error type is public (include/llmerge/error.h): the library throws the
// same llmerge::Error that the CLI, Python and the web server catch. See that
// header for the policy.
#pragma once

#include "llmerge/error.h"
