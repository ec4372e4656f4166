// Reading an earlier recipe stage that is not written (one-pass recipes,
// docs/recipes.md §3; SourceKind::stage_output).
//
// A read of elements [begin, begin + n) of the stage's tensor reads the same
// elements of that tensor's own inputs (through their sources, which may be
// stage outputs in turn), rounds them as the stage's executor would (to its
// config `dtype`), runs the stage's method on them and rounds the result to
// the tensor's output dtype: the values its written model would hold. The
// method is element-wise (MethodSpec::elementwise), so any range gives the
// bits the staged run wrote, whatever the chunk size or thread count. It
// holds one chunk buffer per input and one for the output; a leading
// sub-matrix (embeddings cut to a common vocabulary) is read row segment by
// row segment.
#pragma once

#include <memory>

#include "exec/sources.h"

namespace llmerge {

std::unique_ptr<TensorSource> make_stage_source(const PlannedInput& input);

}  // namespace llmerge
