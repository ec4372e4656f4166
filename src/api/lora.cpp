// The public LoRA extraction (llmerge/lora.h) over extract/.
#include "llmerge/lora.h"

#include "extract/extract_lora.h"

namespace llmerge {

ExtractLoraResult extract_lora(const std::string& model, const std::string& base,
                               const std::string& out_dir, const ExtractLoraOptions& options) {
  return run_extract_lora(model, base, out_dir, options);
}

}  // namespace llmerge
