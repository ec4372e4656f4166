// The model card of a converted model (`llmerge quantize`), as mlx_lm.convert
// writes one: the input's card front matter with `library_name: mlx`,
// `pipeline_tag: text-generation` and the `mlx` tag, `base_model:` the input when it is a Hub
// model, then a line saying how it was converted, then the input's card text, so the recipe of a
// merged input (its README and mergekit_config.yml) survives the conversion.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "plan/plan.h"

namespace llmerge {

// The config file name of quantize_config(): a plan made from it is a conversion.
inline constexpr std::string_view k_conversion_config_file = "<llmerge quantize>";

bool is_conversion(const MergePlan& plan);

// The Hub id of model `i` when it was found in the Hugging Face cache; nullopt
// for a local path (which a card's base_model: never lists, as in mergekit).
std::optional<std::string> hub_id_of(const MergePlan& plan, std::size_t i);

// `input_card` is the input's README.md ("" when it has none).
std::string conversion_card(const MergePlan& plan, const std::string& title,
                            std::string_view input_card);

}  // namespace llmerge
