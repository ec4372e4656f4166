// LoRA extraction (`llmerge extract-lora`): mergekit-extract-lora's job.
//
// Plan, from the headers: every tensor of the fine-tune is classified as
// mergekit does (docs/lora.md) -- a matrix is decomposed, an embedding (unless
// embed_lora), a --save-module and an undecomposable tensor (norms; unless
// skip_undecomposable) are saved whole, the rest left out -- and checked
// against the base (present, same shape), all problems at once. Then, one
// module at a time: both tensors are read in f32 through the executor's
// sources (dense or MLX-quantized), D = FT - BASE, its truncated SVD
// (extract/svd.h), and the factors are written into the adapter file at
// offsets fixed up front (ModelWriter: atomic, deterministic). Peak memory is
// one module's D, its factors and the SVD's workspace.
#pragma once

#include "llmerge/lora.h"

namespace llmerge {

ExtractLoraResult run_extract_lora(const std::string& model, const std::string& base,
                                   const std::string& out_dir, const ExtractLoraOptions& options);

}  // namespace llmerge
